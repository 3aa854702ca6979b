"""`python -m benchmarks.load` (`make bench`): the Serve app under closed-loop load, next to
the single-process monolith running the same pipeline, and the in-process compute floor.

    python -m benchmarks.load --url http://127.0.0.1:8000     # an app that is already up
    python -m benchmarks.load                                 # starts the app in process

For each concurrency (1, 4, 16, 32 by default) both systems get the same load
(`benchmarks.loadgen`: locust FastHttpUser, headless, `warmup` s unrecorded then `duration`
s recorded, real user ids, loopback only), the order alternating level by level (Serve
first, then monolith first, ...) so machine drift hits both. Then the compute floor
(`benchmarks.floor`) runs while both servers idle.

Without `--url`, the app is deployed from `serve_config.yaml` on a private Ray instance
started in this process (free ports, never the machine-wide cluster or port 8000). The
monolith (`benchmarks.monolith`) always runs as a subprocess on a free port unless
`--monolith-url` names one. Both read the artifacts and Redis the config's args resolve to
(by default the `make run` ones: `MOVIEREC_*` settings, the embedded Redis of the run dir).

Writes `load.json` and `load.png` to `--out-dir` (default `benchmarks/results`). Errors print
`error: ...` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import load_report
from benchmarks.common import git_commit, load_average, machine_info, utc_now, write_json
from benchmarks.loadgen import LoadGenError, check_loopback
from benchmarks.stack import (
    APP_NAME,
    SERVE_CONFIG,
    ServeConfig,
    StackError,
    add_app_arguments,
    add_readme_arguments,
    app_overrides,
    monolith_process,
    render_readme,
    serve_in_process,
    stage_status,
)
from deployments.serve_env import serve_env

LOAD_JSON = "load.json"
LOAD_PNG = "load.png"
DEFAULT_LEVELS = (1, 4, 16, 32)


class LoadBenchmarkError(RuntimeError):
    """The benchmark cannot run; the message says why."""


@dataclass
class LoadOptions:
    """What to run.

    Attributes:
        url: A running Serve app; None starts one in this process.
        monolith_url: A running monolith; None starts one; "" skips the monolith.
        concurrency: Concurrency levels, in order.
        warmup_s: Unrecorded seconds at the start of each run.
        duration_s: Recorded seconds of each run.
        k: Movies per request.
        floor_requests: Requests of the compute floor (0 skips it).
        out_dir: Where load.json and load.png go.
        config_path: The serve config (args, user_configs).
        app_args: Overrides of the app's args (artifacts, run dir, ...).
        quiet_load: Before starting, wait until the 1-minute load average is below this.
        quiet_wait_s: ... but at most this long.
        prime_s: Before the levels, each system gets this long at the highest concurrency,
            unrecorded, so the autoscaler settles (Serve's upscale delay is 30 s) and caches
            fill; 0 skips it.
    """

    url: str | None = None
    monolith_url: str | None = None
    concurrency: tuple[int, ...] = DEFAULT_LEVELS
    warmup_s: float = 5.0
    duration_s: float = 20.0
    k: int = 10
    floor_requests: int = 300
    out_dir: Path = Path("benchmarks/results")
    config_path: Path = SERVE_CONFIG
    app_args: dict[str, Any] = field(default_factory=dict)
    quiet_load: float | None = None
    quiet_wait_s: float = 600.0
    prime_s: float = 45.0


def real_user_ids(config: ServeConfig) -> list[int]:
    """The users of the served tree's training split (every one has features and history).

    Raises:
        LoadBenchmarkError: The split is missing.
    """
    import pandas as pd

    from deployments.app import AppArgs

    layout = AppArgs.model_validate(config.args).context().layout
    path = layout.splits_dir / "train.parquet"
    if not path.exists():
        raise LoadBenchmarkError(f"no training split at {path}: run `make artifacts` first")
    users = pd.read_parquet(path, columns=["user_id"])["user_id"].unique()
    return sorted(int(u) for u in users)


def wait_for_quiet(threshold: float, max_wait_s: float) -> dict[str, Any]:
    """Waits until the 1-minute load average is below `threshold` (at most `max_wait_s`)."""
    started = time.monotonic()
    while os.getloadavg()[0] >= threshold and time.monotonic() - started < max_wait_s:
        time.sleep(10.0)
    return {
        "threshold": threshold,
        "waited_s": round(time.monotonic() - started, 1),
        "reached": os.getloadavg()[0] < threshold,
    }


@dataclass(frozen=True)
class ServerProcesses:
    """Which processes' CPU counts as a system's (see `benchmarks.loadgen.CpuMeter`).

    Attributes:
        scope: What they are, in words (recorded in load.json).
        pids: Fixed process ids.
        root: Or: every descendant of this process ...
        exclude: ... but these.
    """

    scope: str
    pids: tuple[int, ...] = ()
    root: int | None = None
    exclude: tuple[int, ...] = ()

    def arguments(self) -> list[str]:
        """The `benchmarks.loadgen` options."""
        out = ["--pids", ",".join(map(str, self.pids))]
        if self.root is not None:
            out += [
                "--root-pid",
                str(self.root),
                "--exclude-pids",
                ",".join(map(str, self.exclude)),
            ]
        return out


def run_loadgen(
    url: str,
    concurrency: int,
    options: LoadOptions,
    users_file: Path,
    processes: ServerProcesses,
    workdir: Path,
    *,
    warmup_s: float | None = None,
    duration_s: float | None = None,
) -> dict[str, Any]:
    """One closed-loop run in a `benchmarks.loadgen` subprocess; its raw JSON."""
    warmup = options.warmup_s if warmup_s is None else warmup_s
    duration = options.duration_s if duration_s is None else duration_s
    out = workdir / f"level-{concurrency}-{time.monotonic_ns()}.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.loadgen",
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
        "--k",
        str(options.k),
        "--users-file",
        str(users_file),
        "--out",
        str(out),
        *processes.arguments(),
    ]
    timeout = warmup + duration + 120.0
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadBenchmarkError(f"the load generator did not finish in {timeout:g} s") from exc
    if done.returncode != 0 or not out.exists():
        raise LoadBenchmarkError(
            f"the load generator failed (status {done.returncode}): {done.stderr[-2000:]}"
        )
    raw: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return raw


def serve_processes(url: str, in_process: bool, exclude: set[int]) -> ServerProcesses:
    """Processes whose CPU counts as the Serve app's.

    In process: every process Ray runs under this one (replicas, including those the
    autoscaler starts, HAProxy, the Serve controller, GCS, raylet, agents), i.e. the whole
    cost of running Serve. Otherwise only the replicas' pids that `/healthz` reports.
    """
    if in_process:
        return ServerProcesses(
            "every process of the in-process Ray instance", root=os.getpid(), exclude=tuple(exclude)
        )
    try:
        import httpx

        body = httpx.get(f"{url}/healthz", timeout=10.0).json()
        pids = tuple(sorted({int(s["pid"]) for s in body["stages"].values() if s.get("pid")}))
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pids = ()
    return ServerProcesses(
        "the stage replicas reported by /healthz (not the ingress, not Ray itself)", pids=pids
    )


def replica_counts() -> dict[str, int] | None:
    """RUNNING replicas per deployment of the in-process app (None when not connected)."""
    import ray

    if not ray.is_initialized():
        return None
    from ray import serve

    app = serve.status().applications.get(APP_NAME)
    if app is None:
        return None
    from ray.serve._private.common import ReplicaState

    return {
        name: int(info.replica_states.get(ReplicaState.RUNNING, 0))
        for name, info in app.deployments.items()
    }


def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        proc = psutil.Process(pid)
        return {pid, *(c.pid for c in proc.children(recursive=True))}
    except psutil.Error:
        return {pid}


def run(options: LoadOptions) -> dict[str, Any]:
    """Runs the whole benchmark and returns the report (see the module doc)."""
    config = ServeConfig.load(options.config_path).with_overrides(args=options.app_args)
    users = real_user_ids(config)
    quiet = None
    if options.quiet_load is not None:
        quiet = wait_for_quiet(options.quiet_load, options.quiet_wait_s)
    load_start = load_average()
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="movierec-load-")))
        users_file = workdir / "users.json"
        users_file.write_text(json.dumps(users))
        systems: dict[str, str] = {}
        mono_pids: set[int] = set()
        if options.monolith_url != "":
            if options.monolith_url:
                systems["monolith"] = check_loopback(options.monolith_url)
            else:
                url, pid = stack.enter_context(
                    monolith_process(config, log_path=workdir / "monolith.log")
                )
                systems["monolith"] = url
                mono_pids = _descendants(pid)
        in_process = options.url is None
        if options.url:
            systems["serve"] = check_loopback(options.url)
        else:
            systems["serve"] = stack.enter_context(serve_in_process(config))
        for name, url in systems.items():
            status = stage_status(url)
            if not status or any(s != "ok" for s in status.values()):
                raise LoadBenchmarkError(f"{name} at {url} is not healthy: {status or 'no answer'}")
        # In process, the monolith and its children are descendants of this process too.
        procs = {"serve": serve_processes(systems["serve"], in_process, mono_pids)}
        if "monolith" in systems:
            procs["monolith"] = (
                ServerProcesses("the monolith process", pids=tuple(sorted(mono_pids)))
                if mono_pids
                else ServerProcesses("unknown (--monolith-url)")
            )
        first = [name for name in load_report.SYSTEMS if name in systems]
        top = max(options.concurrency)
        for name in first if options.prime_s > 0 else []:
            run_loadgen(
                systems[name],
                top,
                options,
                users_file,
                procs[name],
                workdir,
                warmup_s=options.prime_s,
                duration_s=1.0,
            )
        levels: dict[str, list[dict[str, Any]]] = {name: [] for name in systems}
        order: list[list[str]] = []
        tool: dict[str, Any] = {}
        for i, concurrency in enumerate(options.concurrency):
            names = first if i % 2 == 0 else first[::-1]  # alternate who goes first
            order.append(names)
            for name in names:
                raw = run_loadgen(
                    systems[name], concurrency, options, users_file, procs[name], workdir
                )
                levels[name].append(load_report.summarize_level(raw))
                levels[name][-1]["replicas"] = replica_counts() if name == "serve" else None
                tool = raw["tool"]
                _progress(name, levels[name][-1])
        floor = None
        if options.floor_requests > 0:
            floor = run_floor(config, options, users_file, workdir)
    serve_levels = levels.get("serve", [])
    mono_levels = levels.get("monolith", [])
    return {
        "benchmark": "load",
        "created": utc_now(),
        "commit": git_commit(),
        "machine": machine_info((*_PACKAGES,)),
        "load_average": {"start": load_start, "end": load_average(), "quiet_wait": quiet},
        "setup": {
            "mode": "in-process Ray (private instance)" if in_process else "running app (--url)",
            "endpoint": f"GET /recommendations/{{user_id}}?k={options.k}",
            "tool": tool,
            "loop": "closed: each user sends its next request when the answer arrives",
            "concurrency": list(options.concurrency),
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "k": options.k,
            "users": len(users),
            "order": order,
            "server_cpu_scope": {name: p.scope for name, p in procs.items()},
            "prime_s": options.prime_s,
            "serve_env": serve_env() if in_process else None,
            "serve_mode": _serve_mode(in_process),
            "serve_config": str(options.config_path),
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        "systems": {name: {"levels": lv} for name, lv in levels.items()},
        "ratios": load_report.ratios(serve_levels, mono_levels),
        "floor": floor,
        "targets": load_report.check_targets(serve_levels, mono_levels),
    }


def _serve_mode(in_process: bool) -> str:
    if not in_process:
        return "as deployed at --url"
    env = serve_env()
    if not env:
        return "Ray Serve defaults (Python proxy, actor-task handles)"
    return "HAProxy ingress, gRPC handles (" + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"


_PACKAGES = ("numpy", "tensorflow", "ray", "redis", "feast", "fastapi", "uvicorn", "locust")


def run_floor(
    config: ServeConfig, options: LoadOptions, users_file: Path, workdir: Path
) -> dict[str, Any]:
    """The in-process compute floor (`benchmarks.floor`) in a subprocess."""
    out = workdir / "floor.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.floor",
        "--config",
        str(config.path),
        "--args-json",
        json.dumps(config.args),
        "--users-file",
        str(users_file),
        "--requests",
        str(options.floor_requests),
        "--k",
        str(options.k),
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 or not out.exists():
        raise LoadBenchmarkError(
            f"the compute floor failed (status {done.returncode}): {done.stderr[-2000:]}"
        )
    floor: dict[str, Any] = json.loads(out.read_text())
    return floor


def _progress(name: str, lv: dict[str, Any]) -> None:
    lat = lv.get("latency_ms") or {}
    print(
        f"{name:<9} c={lv['concurrency']:<3} {lv['rps']:7.1f} rps  "
        f"p50 {lat.get('p50_ms', float('nan')):7.2f}  p99 {lat.get('p99_ms', float('nan')):7.2f} ms"
        f"  errors {lv['errors']}  degraded {lv['degraded']}",
        flush=True,
    )


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Writes load.json and load.png."""
    json_path = write_json(out_dir / LOAD_JSON, report)
    png_path = load_report.plot(report, out_dir / LOAD_PNG)
    return json_path, png_path


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, runs, writes; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__)
    parser.add_argument("--url", help="a running Serve app (default: start one in process)")
    parser.add_argument(
        "--monolith-url", help="a running monolith (default: start one as a subprocess)"
    )
    parser.add_argument("--no-monolith", action="store_true", help="measure the app alone")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(DEFAULT_LEVELS))
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds per run, unrecorded")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per run, recorded")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--floor-requests", type=int, default=300, help="0 skips the floor")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    add_app_arguments(parser)
    parser.add_argument(
        "--quiet-load", type=float, help="first wait until the 1-min load average is below this"
    )
    parser.add_argument("--quiet-wait", type=float, default=600.0)
    parser.add_argument(
        "--prime", type=float, default=45.0, help="unrecorded seconds at the top level first"
    )
    add_readme_arguments(parser, "load tables")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out_dir / LOAD_JSON, args.readme or Path("README.md"))
    try:
        if any(c < 1 for c in args.concurrency) or args.duration <= 0 or args.warmup < 0:
            raise LoadBenchmarkError("need --concurrency >= 1, --duration > 0, --warmup >= 0")
        if args.k < 1 or args.floor_requests < 0 or args.prime < 0:
            raise LoadBenchmarkError("need --k >= 1, --floor-requests >= 0 and --prime >= 0")
        overrides = app_overrides(args)
        options = LoadOptions(
            url=args.url,
            monolith_url="" if args.no_monolith else args.monolith_url,
            concurrency=tuple(args.concurrency),
            warmup_s=args.warmup,
            duration_s=args.duration,
            k=args.k,
            floor_requests=args.floor_requests,
            out_dir=args.out_dir,
            config_path=args.config,
            app_args=overrides,
            quiet_load=args.quiet_load,
            quiet_wait_s=args.quiet_wait,
            prime_s=args.prime,
        )
        report = run(options)
        json_path, png_path = write(report, options.out_dir)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except (LoadBenchmarkError, LoadGenError, StackError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for target in report["targets"].values():
        met = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        value = "-" if target["value"] is None else f"{target['value']:.2f}"
        print(f"  {target['text']:<52} {value:>8}  {met}")
    print(f"wrote {json_path} and {png_path}")
    return 0 if args.readme is None else render(json_path, args.readme)


def render(json_path: Path, readme: Path) -> int:
    """Regenerates the README's load tables from `json_path`; returns the exit status."""
    return render_readme(
        json_path,
        readme,
        load_report.README_BEGIN,
        load_report.README_END,
        load_report.markdown_tables,
        "load tables",
    )


if __name__ == "__main__":
    sys.exit(main())
