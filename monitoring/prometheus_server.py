"""A local Prometheus (Debian's `prometheus` package) with `monitoring/prometheus.yml`.

`make monitor` installs the package if needed and runs, in the foreground::

    python -m monitoring.prometheus_server run [--port 9090] [--sd-file FILE]

It scrapes every target of Ray's file_sd target file (the metrics agent of each node, Ray's
dashboard and autoscaler), so the running app's metrics, Ray Serve's and Ray's own, and
evaluates the alerting rules of `monitoring/alerts.yml` (its `/alerts` page). Data and log go
to `<run dir>/prometheus/`. Tests start one the same way (`running_prometheus`) on a
config rendered for their own Ray instance (`render_config`).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from movierec.processes import stop_child
from movierec.settings import get_settings

CONFIG_FILE = Path(__file__).resolve().parent / "prometheus.yml"
"""The committed configuration."""

RAY_JOB = "ray"
"""The scrape job reading Ray's file_sd target file."""

INSTALL_HINT = (
    "install Debian's prometheus package: `make monitor` does it, or "
    "`apt-get update && apt-get install -y --no-install-recommends prometheus`"
)


class PrometheusError(RuntimeError):
    """Prometheus is missing, cannot start, or a query failed."""


def find_binary(name: str = "prometheus") -> Path:
    """The path of the `prometheus` (or `promtool`) binary.

    Raises:
        PrometheusError: Not installed.
    """
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None
    )
    if found is None:
        raise PrometheusError(f"{name} not found: {INSTALL_HINT}")
    return Path(found)


def load_config(path: Path = CONFIG_FILE) -> dict[str, Any]:
    """The YAML configuration at `path` as a dict."""
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise PrometheusError(f"{path}: not a Prometheus configuration")
    return loaded


def sd_files(config: dict[str, Any], job: str = RAY_JOB) -> list[str]:
    """The file_sd files of `job` in `config`."""
    for scrape in config.get("scrape_configs", []):
        if scrape.get("job_name") == job:
            return [f for sd in scrape.get("file_sd_configs", []) for f in sd.get("files", [])]
    raise PrometheusError(f"no scrape job {job!r} in the configuration")


def render_config(
    config: dict[str, Any],
    *,
    sd_file: Path | None = None,
    scrape_interval: str | None = None,
    base_dir: Path = CONFIG_FILE.parent,
) -> dict[str, Any]:
    """A copy of `config` with the Ray job's target file and the intervals replaced.

    Args:
        config: A configuration (`load_config()`).
        sd_file: The file_sd target file to read instead of Ray's default one.
        scrape_interval: Scrape and evaluation interval (e.g. "1s"); also the file_sd
            refresh interval.
        base_dir: The directory relative `rule_files` are in (the config's own): they are
            made absolute, since the rendered config is written elsewhere.
    """
    out = copy.deepcopy(config)
    sd_files(out)  # the job exists
    if out.get("rule_files"):
        out["rule_files"] = [str(base_dir / rule) for rule in out["rule_files"]]
    for scrape in out["scrape_configs"]:
        if scrape.get("job_name") != RAY_JOB:
            continue
        for sd in scrape.get("file_sd_configs", []):
            if sd_file is not None:
                sd["files"] = [str(sd_file)]
            if scrape_interval is not None:
                sd["refresh_interval"] = scrape_interval
    if scrape_interval is not None:
        out.setdefault("global", {}).update(
            scrape_interval=scrape_interval, evaluation_interval=scrape_interval
        )
    return out


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextlib.contextmanager
def running_prometheus(
    config: dict[str, Any],
    work_dir: Path,
    port: int,
    *,
    host: str = "127.0.0.1",
    ready_timeout: float = 60.0,
) -> Iterator[str]:
    """Runs Prometheus with `config` until the context exits; yields its base URL.

    Args:
        config: The configuration (written to `work_dir/prometheus.yml`).
        work_dir: Holds the configuration, the TSDB (`data/`) and `prometheus.log`.
        port: HTTP port.
        host: Interface to listen on.
        ready_timeout: Seconds to wait for `/-/ready`.

    Raises:
        PrometheusError: Not installed, the port is taken, or it did not become ready.
    """
    binary = find_binary()
    work_dir.mkdir(parents=True, exist_ok=True)
    config_file = work_dir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    url = f"http://{host}:{port}"
    if _ready(url):
        raise PrometheusError(f"something already answers on {url}: choose another port")
    log_file = work_dir / "prometheus.log"
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            [
                str(binary),
                f"--config.file={config_file}",
                f"--storage.tsdb.path={work_dir / 'data'}",
                f"--web.listen-address={host}:{port}",
                "--storage.tsdb.retention.time=7d",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + ready_timeout
        while not _ready(url):
            if process.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {process.returncode}:\n{_log_tail(log_file)}"
                )
            if time.monotonic() > deadline:
                raise PrometheusError(f"prometheus not ready after {ready_timeout:g} s")
            time.sleep(0.2)
        yield url
    finally:
        stop_child(process, grace_s=15)


def query(url: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The result vector of an instant PromQL query at the current time.

    Raises:
        PrometheusError: The query failed (bad expression, Prometheus error).
    """
    response = httpx.post(f"{url}/api/v1/query", data={"query": expr}, timeout=timeout)
    body = response.json()
    if response.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(f"query {expr!r} failed: {body.get('error', response.text)}")
    result = body["data"]["result"]
    return result if isinstance(result, list) else [result]


def _run(args: argparse.Namespace) -> int:
    config = render_config(
        load_config(args.config), sd_file=args.sd_file, base_dir=args.config.resolve().parent
    )
    targets = [Path(f) for f in sd_files(config)]
    missing = [str(t) for t in targets if not t.exists()]
    if missing:
        print(
            f"warning: {', '.join(missing)} does not exist yet: Ray's dashboard writes it once "
            "the app runs (make run); Prometheus picks it up when it appears.",
            file=sys.stderr,
        )
    work_dir = args.run_dir / "prometheus"
    # `kill` (SIGTERM) unwinds like Ctrl-C does, so Prometheus is stopped with this process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with running_prometheus(config, work_dir, args.port, host=args.host) as url:
        print(
            f"Prometheus on {url} (targets: {url}/targets), scraping {', '.join(map(str, targets))}"
        )
        print(f"alerting rules: {', '.join(config.get('rule_files', []))} ({url}/alerts)")
        print(f"data and log in {work_dir}; Ctrl-C stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping Prometheus")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitoring.prometheus_server")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run Prometheus in the foreground")
    run.add_argument("--port", type=int, default=9090, help="HTTP port (default 9090)")
    run.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    run.add_argument("--config", type=Path, default=CONFIG_FILE, help="configuration file")
    run.add_argument("--sd-file", type=Path, default=None, help="Ray's file_sd target file")
    run.add_argument(
        "--run-dir", type=Path, default=get_settings().run_dir, help="data and log go here"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except PrometheusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
