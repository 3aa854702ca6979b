"""What a benchmark runs against: the Serve app (already running, or started in process) and
the single-process monolith baseline (a subprocess).

* `ServeConfig`: `serve_config.yaml` as the benchmarks read it (the app's args, each
  deployment's `user_config` and options), so the monolith gets exactly the Serve app's rules.
* `serve_in_process(config)`: a private Ray instance in this process (`address="local"`,
  free ports, no dashboard) with the app deployed from the config the way `serve run` deploys
  it, on a free HTTP port. It never touches a machine-wide `ray start` cluster or port 8000,
  and is kept off the network by the loopback guard (`movierec.netguard`) where possible.
* `monolith_process(config)`: `python -m benchmarks.monolith` on a free port.

Both wait until `/healthz` reports every stage "ok", and yield the base URL.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from deployments.readiness import DeployWatch
from movierec.processes import stop_child

ROOT = Path(__file__).resolve().parents[1]
SERVE_CONFIG = ROOT / "serve_config.yaml"
APP_NAME = "movierec"
DEPLOYMENTS = ("Controller", "Retrieval", "Features", "Content", "Ranking")


class StackError(RuntimeError):
    """The app or the baseline could not be brought up; the message says why."""


@dataclass(frozen=True)
class ServeConfig:
    """A parsed `serve_config.yaml` (one application).

    Attributes:
        raw: The whole file as a dict.
        path: Where it was read from.
    """

    raw: dict[str, Any]
    path: Path

    @classmethod
    def load(cls, path: Path = SERVE_CONFIG) -> ServeConfig:
        """Reads and checks the config.

        Raises:
            StackError: Unreadable, or it does not hold exactly the movierec application.
        """
        try:
            raw = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise StackError(f"cannot read {path}: {exc}") from exc
        apps = (raw or {}).get("applications") or []
        if len(apps) != 1 or apps[0].get("name") != APP_NAME:
            raise StackError(f"{path}: expected one application named {APP_NAME!r}")
        return cls(raw, path)

    @property
    def app(self) -> dict[str, Any]:
        """The application entry."""
        app: dict[str, Any] = self.raw["applications"][0]
        return app

    @property
    def args(self) -> dict[str, Any]:
        """The application's args (`deployments.app.AppArgs`)."""
        return dict(self.app.get("args") or {})

    def deployment(self, name: str) -> dict[str, Any]:
        """One deployment's entry ({} when the file does not list it)."""
        for entry in self.app.get("deployments") or []:
            if entry.get("name") == name:
                return dict(entry)
        return {}

    def user_config(self, name: str) -> dict[str, Any]:
        """One deployment's `user_config` ({} when unset)."""
        return dict(self.deployment(name).get("user_config") or {})

    def with_overrides(
        self,
        *,
        args: Mapping[str, Any] | None = None,
        port: int | None = None,
        env_vars: Mapping[str, str] | None = None,
    ) -> ServeConfig:
        """A copy with app args, the HTTP port and runtime env variables replaced."""
        raw = copy.deepcopy(self.raw)
        app = raw["applications"][0]
        if args:
            app.setdefault("args", {}).update(args)
        if port is not None:
            raw.setdefault("http_options", {})["port"] = port
        if env_vars:
            app.setdefault("runtime_env", {}).setdefault("env_vars", {}).update(env_vars)
        return ServeConfig(raw, self.path)

    def with_user_config(self, name: str, **updates: Any) -> ServeConfig:
        """A copy with fields of one listed deployment's `user_config` replaced."""
        raw = copy.deepcopy(self.raw)
        for entry in raw["applications"][0].get("deployments") or []:
            if entry.get("name") == name:
                entry["user_config"] = {**(entry.get("user_config") or {}), **updates}
        return ServeConfig(raw, self.path)


INGRESS_DRAIN_ENV = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"


@contextlib.contextmanager
def serve_mode_env(
    extra: Mapping[str, str] | None = None, *, default_mode: bool = False
) -> Iterator[dict[str, str]]:
    """The environment of a throwaway Ray instance in this process, set in `os.environ` for
    the duration (restored after): the Serve mode of `deployments.serve_env` (as `make serve`
    gives `ray start`; `default_mode`: as `MOVIEREC_SERVE_DEFAULT_MODE=1 make serve` does),
    HAProxy's stats and metrics on free ports and its files (admin socket) in a private
    temporary directory, no drain period for ingress replicas, plus `extra`.

    The drain period: with direct ingress, an ingress replica that stops keeps answering for
    at least `RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S` (Ray's default 30 s), so that an
    external load balancer can take it out first, and `serve.shutdown()` waits for it (30 s
    per throwaway instance, then a timeout warning). Nothing outside balances to a throwaway
    instance, so it is 0 here; `make serve` keeps Ray's default."""
    from deployments.serve_env import (
        DEFAULT_MODE_ENV,
        haproxy_paths,
        haproxy_ports,
        serve_env,
        uses_haproxy,
    )

    ray_env = serve_env({**os.environ, DEFAULT_MODE_ENV: "1"} if default_mode else None)
    private = Path(tempfile.mkdtemp(prefix="mr-hap-"))  # mode 0700, short enough for sockets
    if uses_haproxy(ray_env):
        ray_env.update(haproxy_ports(free_port(), free_port()))
        ray_env.update(haproxy_paths(private))
        ray_env[INGRESS_DRAIN_ENV] = "0"
    ray_env.update(extra or {})
    saved = {name: os.environ.get(name) for name in ray_env}
    os.environ.update(ray_env)
    try:
        yield ray_env
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(private, ignore_errors=True)


RELAXED_TIMEOUTS: dict[str, float] = {
    "total": 5.0,
    "retrieval": 1.0,
    "features": 1.0,
    "content": 1.0,
    "ranking": 2.0,
    "similar": 2.0,
}
"""The Controller's stage deadlines for runs that check answers, not speed (quality
benchmarks, e2e tests): on a shared 2-core machine the production budget (150 ms) turns a
slow moment into a fallback."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stage_status(url: str, timeout: float = 10.0) -> dict[str, str]:
    """Stage name -> status from `/healthz` ({} when it does not answer)."""
    try:
        response = httpx.get(f"{url}/healthz", timeout=timeout)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return {}
    stages = body.get("stages") if isinstance(body, dict) else None
    if not isinstance(stages, dict):
        return {}
    return {name: str((info or {}).get("status")) for name, info in stages.items()}


def wait_healthy(url: str, timeout: float = 300.0, check: Any = None) -> dict[str, str]:
    """Waits until `/healthz` shows every stage "ok".

    Args:
        url: Base URL.
        timeout: Seconds.
        check: Called every poll (e.g. raises when the server process died).

    Raises:
        StackError: Not healthy in time.
    """
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}
    while time.monotonic() < deadline:
        if check is not None:
            check()
        last = stage_status(url)
        if last and all(status == "ok" for status in last.values()):
            return last
        time.sleep(0.5)
    raise StackError(f"{url} not healthy after {timeout:g} s: {last or 'no answer'}")


def deploy(config: ServeConfig, timeout: float = 600.0) -> None:
    """Submits the config like `serve run`/`serve deploy` do (to the Ray instance this
    process is connected to); waits until the app is RUNNING."""
    deploy_raw(config.raw, timeout)


def deploy_raw(raw: dict[str, Any], timeout: float = 600.0, app: str = APP_NAME) -> None:
    """`deploy` for a config held as a plain dict (`serve_config.yaml` as parsed), whose
    application `app` is waited for.

    Waits 1 s before polling, so a redeploy is not mistaken for done by the previous
    config's RUNNING status.

    Raises:
        StackError: The app failed to deploy (`DeployWatch`: DEPLOY_FAILED, or UNHEALTHY for
            longer than Serve takes to replace a replica), or was not RUNNING within
            `timeout` seconds.
    """
    from ray import serve
    from ray.serve._private import api as serve_api
    from ray.serve.schema import ServeDeploySchema

    schema = ServeDeploySchema.model_validate(raw)
    client = serve_api.serve_start(
        http_options=schema.http_options.model_dump(), proxy_location=schema.proxy_location
    )
    client.deploy_apps(schema, _blocking=False)
    deadline = time.monotonic() + timeout
    watch = DeployWatch()
    time.sleep(1.0)
    while True:
        status = serve.status().applications.get(app)
        verdict = watch.observe(None if status is None else status.status, time.monotonic())
        if verdict == "running":
            return
        if verdict == "failed" and status is not None:
            raise StackError(f"{app} {status.status.value}: {status.message[-2000:]}")
        if time.monotonic() > deadline:
            raise StackError(f"{app} not RUNNING after {timeout:g} s: {status}")
        time.sleep(0.5)


@contextlib.contextmanager
def serve_in_process(
    config: ServeConfig,
    *,
    port: int | None = None,
    num_cpus: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
) -> Iterator[str]:
    """Runs the app on a private Ray instance started by this process.

    Ray's processes get `serve_mode_env(env)`, and the loopback guard when it can be applied
    (`movierec.netguard`). The Events deployment exports its log to a private temporary
    directory, so a benchmark's events never enter a full build's training data.

    Args:
        config: What to deploy; its HTTP port is replaced by `port`.
        port: The HTTP port (default: a free one). `deploy(config.with_overrides(port=...))`
            with the same port updates the running app (e.g. a changed user_config).
        num_cpus: CPUs Ray may schedule (default: the machine's).
        env: More environment variables for Ray's processes (set before Ray starts,
            restored after).
        timeout: Seconds to wait for the app.

    Yields:
        The app's base URL (http://127.0.0.1:<port>).
    """
    port = port or free_port()
    # The benchmark's events never reach a build: the offline copy of its event log goes to
    # a private directory (removed after), not the tree's `<run_dir>/events/<namespace>`.
    bench_events = Path(tempfile.mkdtemp(prefix="mr-bench-events-"))
    deployed = config.with_overrides(port=port).with_user_config(
        "Events", offline_dir=str(bench_events)
    )
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, bench_events, ignore_errors=True)
        cleanup.enter_context(private_ray(num_cpus=num_cpus, env=env))
        deploy(deployed, timeout)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, timeout)
        yield url


@contextlib.contextmanager
def private_ray(
    *, num_cpus: int | None = None, env: Mapping[str, str] | None = None
) -> Iterator[None]:
    """A private Ray instance started by this process (Serve and Ray shut down after).

    Ray's processes get `serve_mode_env(env)`, and the loopback guard when it can be applied
    (`movierec.netguard`); no dashboard.

    Args:
        num_cpus: CPUs Ray may schedule (default: the machine's).
        env: More environment variables for Ray's processes.
    """
    import ray
    from ray import serve

    from movierec.netguard import guarding_this_process

    with serve_mode_env(env), guarding_this_process():
        ray.init(
            address="local",
            num_cpus=num_cpus or os.cpu_count() or 2,
            include_dashboard=False,
            namespace="movierec-bench",
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
        )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                serve.shutdown()
            ray.shutdown()


@contextlib.contextmanager
def monolith_process(
    config: ServeConfig,
    *,
    timeout: float = 300.0,
    log_path: Path | None = None,
    workers: int = 1,
) -> Iterator[tuple[str, int]]:
    """Runs `python -m benchmarks.monolith` on a free port with the config's args and rules.

    Args:
        config: The config (args, user_configs).
        timeout: Seconds to become healthy (every worker started).
        log_path: Where its output goes (default: nowhere).
        workers: Its worker processes (> 1: a supervisor and that many workers).

    Yields:
        (base URL, pid of the process started: the only worker, or the supervisor).

    Raises:
        StackError: It exited or did not become healthy in time (its log tail included).
    """
    port = free_port()
    log_file = log_path or Path(os.devnull)
    ready = Path(tempfile.mkdtemp(prefix="movierec-monolith-")) / "ready.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.monolith",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--ready-file",
        str(ready),
        "--config",
        str(config.path),
        "--args-json",
        json.dumps(config.args),
    ]
    with open(log_file, "ab") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def alive() -> None:
        if process.poll() is not None:
            raise StackError(
                f"the monolith exited with status {process.returncode}{_tail(log_path)}"
            )

    try:
        deadline = time.monotonic() + timeout
        while not ready.exists():  # every worker up before the first request
            alive()
            if time.monotonic() > deadline:
                raise StackError(f"the monolith's workers not started after {timeout:g} s")
            time.sleep(0.5)
        wait_healthy(url, max(deadline - time.monotonic(), 10.0), check=alive)
        yield url, process.pid
    finally:
        stop_child(process, grace_s=30, kill_wait_s=10)
        ready.unlink(missing_ok=True)
        ready.parent.rmdir()


def _tail(path: Path | None, chars: int = 2000) -> str:
    if path is None or not path.exists():
        return ""
    return f"; log {path}:\n{path.read_text(errors='replace')[-chars:]}"


# --- the benchmarks' shared command-line pieces ----------------------------------------------


def add_app_arguments(parser: Any, *, with_mode: bool = True) -> None:
    """`--config` and the overrides of the app's args (`--artifacts-dir`, `--variant`,
    `--mode`, `--run-dir`); read them back with `app_overrides`."""
    parser.add_argument("--config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--artifacts-dir", type=Path, help="override the config's args")
    parser.add_argument("--variant")
    if with_mode:
        parser.add_argument("--mode", choices=("eval", "full"))
    parser.add_argument("--run-dir", type=Path)


def app_overrides(args: Any) -> dict[str, Any]:
    """The app args given on the command line (see `add_app_arguments`), JSON-ready."""
    out: dict[str, Any] = {}
    for key in ("artifacts_dir", "variant", "mode", "run_dir"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = str(value) if isinstance(value, Path) else value
    return out


def add_readme_arguments(parser: Any, what: str) -> None:
    """`--readme` (also regenerate that README's `what`) and `--render-only`."""
    parser.add_argument("--readme", type=Path, help=f"also regenerate this README's {what}")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help=f"only regenerate the {what} of --readme (default README.md) from the JSON",
    )


def render_readme(
    json_path: Path, readme: Path, begin: str, end: str, render: Any, what: str
) -> int:
    """Regenerates the README block between `begin` and `end` with `render(report)`.

    Returns:
        The exit status (2 with `error: ...` on stderr when the JSON or markers are missing).
    """
    from benchmarks.common import update_readme_block

    try:
        report = json.loads(json_path.read_text())
        changed = update_readme_block(readme, begin, end, render(report))
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{readme}: {what} {'updated' if changed else 'unchanged'}")
    return 0
