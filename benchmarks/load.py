"""`python -m benchmarks.load` (`make bench`): the Serve app under load, next to the monolith
running the same pipeline with one worker and with one worker per core, judged on goodput.

    python -m benchmarks.load --url http://127.0.0.1:8000     # an app that is already up
    python -m benchmarks.load                                 # starts the app in process

Three systems: the Serve app, `benchmarks.monolith` with 1 worker and with `--monolith-workers`
(default: one per core). After an unrecorded priming at the top concurrency (`--prime`:
the autoscaler settles), every system's CPU by process role is measured with no traffic for
`--idle` seconds (Ray's own idle share, subtracted later). Then for each
concurrency (1, 4, 16, 32 by default) every system gets the same closed-loop load
(`benchmarks.loadgen`: locust FastHttpUser, headless, `warmup` s unrecorded then `duration`
s recorded, known users only, loopback only), the order alternating level by level so
machine drift hits all. Each level records goodput (HTTP 200 and not degraded), RPS, the
degraded share, the fallbacks by stage and reason, latency, and the server processes' CPU
and memory by role (`benchmarks.processes`). Then each system's open-loop capacity is
searched (`benchmarks.openloop`: the highest fixed arrival rate with at most 1% degraded or
failed requests and p99 within the Controller's `timeouts.total`), and the compute floor
(`benchmarks.floor`) runs while the servers idle.

Without `--url`, the app is deployed from `serve_config.yaml` on a private Ray instance
started in this process (free ports, never the machine-wide cluster or port 8000). The
monoliths always run as subprocesses on free ports unless `--monolith-url` names one
(then the N-worker one is skipped). All read the artifacts and Redis the config's args
resolve to (by default the `make run` ones: `MOVIEREC_*` settings, the embedded Redis of the
run dir); Redis's CPU counts for the system under load.

Writes `load.json` and `load.png` to `--out-dir` (default `benchmarks/results`). Errors print
`error: ...` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import load_render, load_report
from benchmarks.capacity import SearchSettings
from benchmarks.common import git_commit, load_average, machine_info, utc_now, write_json
from benchmarks.load_runs import (
    DEFAULT_LEVELS,
    CapacityOptions,
    LoadBenchmarkError,
    LoadOptions,
    budget_ms,
    run_capacity,
    run_floor,
    run_loadgen,
)
from benchmarks.load_systems import (
    descendants,
    measure_idle,
    redis_pid,
    replica_counts,
    system_processes,
)
from benchmarks.loadgen import LoadGenError, check_loopback
from benchmarks.stack import (
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
from deployments.serve_env import serve_env, uses_haproxy

LOAD_JSON = "load.json"
IDLE_SETTLE_S = 2.0
LOAD_PNG = "load.png"


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
        mono_pids: dict[str, set[int]] = {}
        wide = options.monolith_workers if options.monolith_workers > 1 else 0
        if options.monolith_url:
            systems["monolith"] = check_loopback(options.monolith_url)
        elif options.monolith_url is None:
            for name, workers in (("monolith", 1), ("monolith_n", wide)):
                if workers:
                    url, pid = stack.enter_context(
                        monolith_process(config, log_path=workdir / f"{name}.log", workers=workers)
                    )
                    systems[name] = url
                    mono_pids[name] = descendants(pid)
        in_process = options.url is None
        if options.url:
            systems["serve"] = check_loopback(options.url)
        else:
            systems["serve"] = stack.enter_context(serve_in_process(config))
        for name, url in systems.items():
            status = stage_status(url)
            if not status or any(s != "ok" for s in status.values()):
                raise LoadBenchmarkError(f"{name} at {url} is not healthy: {status or 'no answer'}")
        procs = system_processes(systems, in_process, mono_pids, redis_pid(config))
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
        # After the priming, so the idle share is that of the replicas the levels run on
        # (Serve's autoscaler scales down only after 10 idle minutes).
        idle = {}
        if options.idle_s > 0:
            time.sleep(IDLE_SETTLE_S)
            idle = measure_idle(procs, options.idle_s)
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
                idle_cores = idle[name]["cores_by_role"] if name in idle else None
                levels[name].append(load_report.summarize_level(raw, idle_cores))
                levels[name][-1]["replicas"] = replica_counts() if name == "serve" else None
                tool = raw["tool"]
                _progress(name, levels[name][-1])
        capacity = None
        if options.capacity is not None:
            budget = budget_ms(config)
            capacity = {
                name: run_capacity(systems[name], options, budget, users_file, workdir)
                for name in first
            }
        floor = None
        if options.floor_requests > 0:
            floor = run_floor(config, options, users_file, workdir)
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
            "goodput": "answers/s with HTTP 200 and degraded=false (no fallback)",
            "concurrency": list(options.concurrency),
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "k": options.k,
            "users": len(users),
            "users_source": "the served tree's training split (known users: no cold start)",
            "order": order,
            "monolith_workers": wide if "monolith_n" in systems else None,
            "idle_s": options.idle_s,
            "server_cpu_scope": {name: p.scope for name, p in procs.items()},
            "prime_s": options.prime_s,
            "serve_env": serve_env() if in_process else None,
            "serve_mode": _serve_mode(in_process),
            "serve_config": str(options.config_path),
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        "systems": {name: {"levels": lv, "idle": idle.get(name)} for name, lv in levels.items()},
        "capacity": capacity,
        "ratios": load_report.ratios(
            levels.get("serve", []), levels.get("monolith", []), levels.get("monolith_n", [])
        ),
        "floor": floor,
        "targets": load_report.check_targets(
            levels.get("serve", []), levels.get("monolith", []), levels.get("monolith_n", [])
        ),
    }


def _serve_mode(in_process: bool) -> str:
    if not in_process:
        return "as deployed at --url"
    env = serve_env()
    mode = (
        "HAProxy ingress, gRPC handles" if uses_haproxy(env) else "Python proxy, actor-task handles"
    )
    return f"{mode} (" + ", ".join(f"{k}={v}" for k, v in env.items()) + ")"


_PACKAGES = ("numpy", "tensorflow", "ray", "redis", "feast", "fastapi", "uvicorn", "locust")


def _progress(name: str, lv: dict[str, Any]) -> None:
    lat = lv.get("latency_ms") or {}
    print(
        f"{name:<10} c={lv['concurrency']:<3} goodput {lv['goodput']:7.1f}/s  "
        f"{lv['rps']:7.1f} rps  p50 {lat.get('p50_ms', float('nan')):7.2f}  "
        f"p99 {lat.get('p99_ms', float('nan')):7.2f} ms  errors {lv['errors']}  "
        f"degraded {lv['degraded']}",
        flush=True,
    )


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Writes load.json and load.png."""
    json_path = write_json(out_dir / LOAD_JSON, report)
    png_path = load_render.plot(report, out_dir / LOAD_PNG)
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
    parser.add_argument(
        "--monolith-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="workers of the wide monolith (default: one per core; 1 skips it)",
    )
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds of no-traffic CPU first (0: none)"
    )
    _capacity_arguments(parser)
    add_readme_arguments(parser, "load tables")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out_dir / LOAD_JSON, args.readme or Path("README.md"))
    try:
        if any(c < 1 for c in args.concurrency) or args.duration <= 0 or args.warmup < 0:
            raise LoadBenchmarkError("need --concurrency >= 1, --duration > 0, --warmup >= 0")
        if args.k < 1 or args.floor_requests < 0 or args.prime < 0:
            raise LoadBenchmarkError("need --k >= 1, --floor-requests >= 0 and --prime >= 0")
        if args.monolith_workers < 1 or args.idle < 0:
            raise LoadBenchmarkError("need --monolith-workers >= 1 and --idle >= 0")
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
            monolith_workers=args.monolith_workers,
            idle_s=args.idle,
            capacity=_capacity_options(args),
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
        print(f"  {target['text']:<80} {value:>8}  {met}")
    print(f"wrote {json_path} and {png_path}")
    return 0 if args.readme is None else render(json_path, args.readme)


def _capacity_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = CapacityOptions()
    search = defaults.search
    group = parser.add_argument_group("open-loop capacity search (benchmarks.openloop)")
    group.add_argument(
        "--capacity-time-cap",
        type=float,
        default=search.time_cap_s,
        help="seconds per system (0 skips the search)",
    )
    group.add_argument("--capacity-start-rate", type=float, default=search.start_rate)
    group.add_argument("--capacity-max-rate", type=float, default=search.max_rate)
    group.add_argument("--capacity-max-probes", type=int, default=search.max_probes)
    group.add_argument("--capacity-tolerance", type=float, default=search.tolerance)
    group.add_argument("--probe-warmup", type=float, default=defaults.probe_warmup_s)
    group.add_argument("--probe-duration", type=float, default=defaults.probe_duration_s)


def _capacity_options(args: argparse.Namespace) -> CapacityOptions | None:
    if args.capacity_time_cap <= 0:
        return None
    if args.probe_duration <= 0 or args.probe_warmup < 0:
        raise LoadBenchmarkError("need --probe-duration > 0 and --probe-warmup >= 0")
    search = SearchSettings(
        start_rate=args.capacity_start_rate,
        max_rate=args.capacity_max_rate,
        max_probes=args.capacity_max_probes,
        tolerance=args.capacity_tolerance,
        time_cap_s=args.capacity_time_cap,
    )
    return CapacityOptions(
        search=search, probe_warmup_s=args.probe_warmup, probe_duration_s=args.probe_duration
    )


def render(json_path: Path, readme: Path) -> int:
    """Regenerates the README's load tables from `json_path`; returns the exit status."""
    return render_readme(
        json_path,
        readme,
        load_render.README_BEGIN,
        load_render.README_END,
        load_render.markdown_tables,
        "load tables",
    )


if __name__ == "__main__":
    sys.exit(main())
