"""The load benchmark's options and the subprocesses it runs: one closed-loop level
(`benchmarks.loadgen`), one open-loop capacity search (`benchmarks.openloop`), the compute
floor (`benchmarks.floor`). Each runs in its own process (locust and gevent monkey-patch or
own the event loop; the floor loads the models), bounded in time, and hands back its JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.capacity import SearchSettings
from benchmarks.load_systems import ServerProcesses
from benchmarks.stack import SERVE_CONFIG, ServeConfig

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
        monolith_workers: Workers of the wide monolith (1 skips it).
        idle_s: Seconds of the no-traffic CPU measurement (0 skips it: nothing subtracted).
        capacity: The open-loop capacity search (None skips it).
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
    monolith_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    idle_s: float = 10.0
    capacity: CapacityOptions | None = field(default_factory=lambda: CapacityOptions())


@dataclass(frozen=True)
class CapacityOptions:
    """The open-loop capacity search of every system (`benchmarks.openloop`).

    Attributes:
        search: Rates and bounds (`time_cap_s` is per system).
        probe_warmup_s: Unrecorded seconds at the start of each probe.
        probe_duration_s: Recorded seconds of each probe.
        max_bad_share: At most this share of degraded or failed requests.
        connections: The generator's keep-alive connections.
    """

    search: SearchSettings = field(
        default_factory=lambda: SearchSettings(start_rate=20.0, max_probes=10, time_cap_s=120.0)
    )
    probe_warmup_s: float = 1.0
    probe_duration_s: float = 4.0
    max_bad_share: float = 0.01
    connections: int = 64


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
    return _run_json(command, out, warmup + duration + 120.0, "the load generator")


def budget_ms(config: ServeConfig) -> float:
    """The Controller's request budget (`timeouts.total`), milliseconds."""
    from deployments.config import ControllerConfig

    controller = ControllerConfig.model_validate(config.user_config("Controller"))
    return 1000.0 * float(controller.timeouts.total)


def run_capacity(
    url: str, options: LoadOptions, budget_ms: float, users_file: Path, workdir: Path
) -> dict[str, Any]:
    """One system's open-loop capacity search in a `benchmarks.openloop` subprocess."""
    assert options.capacity is not None
    cap = options.capacity
    search = cap.search
    out = workdir / f"capacity-{time.monotonic_ns()}.json"
    command = [
        sys.executable,
        "-m",
        "benchmarks.openloop",
        "--url",
        url,
        "--users-file",
        str(users_file),
        "--out",
        str(out),
        "--k",
        str(options.k),
        "--start-rate",
        str(search.start_rate),
        "--growth",
        str(search.growth),
        "--min-rate",
        str(search.min_rate),
        "--max-rate",
        str(search.max_rate),
        "--tolerance",
        str(search.tolerance),
        "--max-probes",
        str(search.max_probes),
        "--time-cap",
        str(search.time_cap_s),
        "--probe-warmup",
        str(cap.probe_warmup_s),
        "--probe-duration",
        str(cap.probe_duration_s),
        "--connections",
        str(cap.connections),
        "--max-bad-share",
        str(cap.max_bad_share),
        "--p99-budget-ms",
        str(budget_ms),
    ]
    # the cap stops new probes; the last one may still run, and each is bounded
    timeout = search.time_cap_s + cap.probe_warmup_s + cap.probe_duration_s + 120.0
    result = _run_json(command, out, timeout, "the capacity search")
    print(
        f"capacity  {url}: {result['capacity_rps']:.1f} requests/s "
        f"({len(result['probes'])} probes, stopped by {result['stopped_by']})",
        flush=True,
    )
    return result


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


def _run_json(command: list[str], out: Path, timeout: float, what: str) -> dict[str, Any]:
    """Runs a measuring subprocess that writes its JSON result to `out`; returns it.

    Raises:
        LoadBenchmarkError: It ran past `timeout` seconds, failed, or wrote nothing.
    """
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LoadBenchmarkError(f"{what} did not finish in {timeout:g} s") from exc
    if done.returncode != 0 or not out.exists():
        raise LoadBenchmarkError(f"{what} failed (status {done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return result
