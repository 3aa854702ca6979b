"""Which processes make up each system of the load benchmark, and what they cost idle.

The Serve app in process is every descendant of this process (Ray's whole instance), minus
the monoliths; a monolith is its process(es); Redis counts for whichever system is under
load (only one is at a time). `benchmarks.processes` splits their CPU by role.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from benchmarks.processes import ProcessMeter, listener_pid
from benchmarks.stack import APP_NAME, ServeConfig


@dataclass(frozen=True)
class ServerProcesses:
    """Which processes' CPU and memory count as a system's (`benchmarks.processes`).

    Attributes:
        scope: What they are, in words (recorded in load.json).
        pids: Fixed process ids (plus ...
        root: ... every descendant of this process ...
        exclude: ... but these).
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

    def meter(self) -> ProcessMeter:
        """A meter of these processes."""
        return ProcessMeter(self.pids, self.root, self.exclude)


def measure_idle(procs: dict[str, ServerProcesses], seconds: float) -> dict[str, dict[str, Any]]:
    """Every system's CPU (cores, by role) and memory with no traffic, over one window.

    Returns:
        {system: {"window_s", "cores", "cores_by_role", "rss_bytes", "machine_cpu_busy"}}.
    """
    meters = {name: p.meter() for name, p in procs.items()}
    for meter in meters.values():
        meter.start()
    started = time.perf_counter()
    time.sleep(seconds)
    window = time.perf_counter() - started
    out = {}
    for name, meter in meters.items():
        reading = meter.stop()
        out[name] = {
            "window_s": window,
            "cores": (reading.cpu_s or 0.0) / window,
            "cores_by_role": {r: v / window for r, v in reading.cpu_by_role.items()},
            "rss_bytes": {"total": sum(reading.rss_by_role.values()), **reading.rss_by_role},
            "machine_cpu_busy": reading.machine_busy,
        }
    return out


def serve_processes(
    url: str, in_process: bool, exclude: set[int], redis: int | None
) -> ServerProcesses:
    """Processes whose CPU counts as the Serve app's.

    In process: every process Ray runs under this one (replicas, including those the
    autoscaler starts, HAProxy, the Serve controller, GCS, raylet, agents), i.e. the whole
    cost of running Serve, plus Redis. Otherwise only the replicas' pids that `/healthz`
    reports, plus Redis.
    """
    extra = () if redis is None else (redis,)
    if in_process:
        return ServerProcesses(
            "every process of the in-process Ray instance, and Redis",
            pids=extra,
            root=os.getpid(),
            exclude=tuple(sorted({*exclude, *extra})),
        )
    try:
        import httpx

        body = httpx.get(f"{url}/healthz", timeout=10.0).json()
        pids = tuple(sorted({int(s["pid"]) for s in body["stages"].values() if s.get("pid")}))
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pids = ()
    return ServerProcesses(
        "the stage replicas reported by /healthz (not the ingress, not Ray itself), and Redis",
        pids=pids + extra,
    )


def redis_pid(config: ServeConfig) -> int | None:
    """The pid of the Redis server the app uses, when it runs on this machine as this user."""
    from urllib.parse import urlsplit

    from deployments.app import AppArgs

    try:
        url = AppArgs.model_validate(config.args).context().resolve_redis_url(verify=False)
        port = urlsplit(url).port or 6379
    except Exception:
        return None
    return listener_pid(port)


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


def descendants(pid: int) -> set[int]:
    import psutil

    try:
        proc = psutil.Process(pid)
        return {pid, *(c.pid for c in proc.children(recursive=True))}
    except psutil.Error:
        return {pid}


def system_processes(
    systems: dict[str, str],
    in_process: bool,
    mono_pids: dict[str, set[int]],
    redis: int | None,
) -> dict[str, ServerProcesses]:
    """Each system's processes; Redis counts for whichever system is under load."""
    every_mono = set().union(*mono_pids.values()) if mono_pids else set()
    # In process, the monoliths and their workers are descendants of this process too.
    out = {"serve": serve_processes(systems["serve"], in_process, every_mono, redis)}
    extra = () if redis is None else (redis,)
    for name in ("monolith", "monolith_n"):
        if name not in systems:
            continue
        if name in mono_pids:
            scope = "the monolith's process(es), and Redis"
            out[name] = ServerProcesses(scope, pids=(*sorted(mono_pids[name]), *extra))
        else:
            out[name] = ServerProcesses("unknown (--monolith-url)")
    return out
