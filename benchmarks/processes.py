"""Which process does what, and what it costs: CPU seconds and resident memory by role.

A system's processes are fixed pids (the monolith's, Redis) and/or every descendant of a
root process (the in-process Ray instance: replicas, the Serve controller, HAProxy, raylet,
GCS, agents). Each is given a role from its process title or command line (`role_of`):
Ray names its processes (`ray::ServeReplica:movierec:Ranking`, `ray::ServeController`,
`ray::DashboardAgent`, `raylet`, `gcs_server`, ...), so the CPU of a level can be split the
way the issue asks: Controller replica(s), each stage's replicas, Serve's controller and
proxy, Ray's own daemons, Redis, the monolith's workers.

Kept free of project imports (psutil only): the load generator's process uses it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ROLES: tuple[str, ...] = (
    "controller",
    "retrieval",
    "content",
    "features",
    "ranking",
    "events",
    "serve_controller",
    "proxy",
    "raylet",
    "gcs",
    "dashboard",
    "ray_other",
    "monolith",
    "redis",
    "other",
)
"""Every role, in the order the README table lists them."""

ROLE_LABELS: dict[str, str] = {
    "controller": "Controller replica(s)",
    "retrieval": "Retrieval replica(s)",
    "content": "Content replica(s)",
    "features": "Features replica(s)",
    "ranking": "Ranking replica(s)",
    "events": "Events replica(s) (feedback applier)",
    "serve_controller": "ServeController",
    "proxy": "proxy (HAProxy / ProxyActor)",
    "raylet": "raylet",
    "gcs": "GCS",
    "dashboard": "dashboard + agents",
    "ray_other": "other Ray processes (idle workers, monitors)",
    "monolith": "monolith worker(s)",
    "redis": "Redis",
    "other": "other",
}

_REPLICA = re.compile(r"ServeReplica:[^:\s]+:([A-Za-z0-9_-]+)")
_STAGE_ROLES = {"controller", "retrieval", "content", "features", "ranking", "events"}


def role_of(name: str, cmdline: Sequence[str]) -> str:
    """The role of one process from its name and command line (or process title).

    Examples:
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Ranking"]) -> "ranking"
        ("raylet", [".../raylet", "--raylet_socket_name=..."]) -> "raylet"
        ("redis-server", ["redis-server 127.0.0.1:6390"]) -> "redis"

    Args:
        name: The process name (`comm`, at most 15 characters on Linux).
        cmdline: Its command line; Ray's processes rewrite it into their title.

    Returns:
        One of `ROLES`.
    """
    text = " ".join(cmdline) if cmdline else name
    replica = _REPLICA.search(text)
    if replica:
        deployment = replica.group(1).lower()
        return deployment if deployment in _STAGE_ROLES else "ray_other"
    exe = os.path.basename(cmdline[0]) if cmdline else name
    if "ServeController" in text:
        return "serve_controller"
    if "ProxyActor" in text or exe == "haproxy" or name == "haproxy":
        return "proxy"
    if exe == "raylet" or name == "raylet":
        return "raylet"
    if exe == "gcs_server" or name == "gcs_server":
        return "gcs"
    if "redis-server" in text or name.startswith("redis-server"):
        return "redis"
    if "benchmarks.monolith" in text:
        return "monolith"
    lowered = text.lower()
    if any(part in lowered for part in ("dashboard", "runtime_env", "runtimeenvagent")):
        return "dashboard"
    if text.startswith("ray::") or "/ray/" in text or "ray_" in exe:
        return "ray_other"
    return "other"


def by_role(values: Mapping[int, float], roles: Mapping[int, str]) -> dict[str, float]:
    """Sums per-pid values into per-role ones (pids without a role count as "other")."""
    out: dict[str, float] = {}
    for pid, value in values.items():
        role = roles.get(pid, "other")
        out[role] = out.get(role, 0.0) + value
    return {role: out[role] for role in ROLES if role in out}


def listener_pid(port: int, names: Iterable[str] = ("redis-server",)) -> int | None:
    """The pid of the process (whose name starts with one of `names`) listening on `port`
    of this machine; None when none is found (e.g. the server belongs to another user)."""
    import psutil

    prefixes = tuple(names)
    for proc in psutil.process_iter(["name"]):
        try:
            if not (proc.info["name"] or "").startswith(prefixes):
                continue
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                    return int(proc.pid)
        except psutil.Error:
            continue
    return None


@dataclass
class Reading:
    """What the processes used over a window.

    Attributes:
        cpu_s: CPU seconds of all of them (None when no process was found).
        cpu_by_role: CPU seconds per role.
        rss_by_role: Resident memory per role at the end, bytes (summed over processes,
            so pages shared between processes count once per process).
        machine_busy: Share of all the machine's cores busy over the window.
        pids: Every process seen.
        roles: pid -> role.
    """

    cpu_s: float | None
    cpu_by_role: dict[str, float]
    rss_by_role: dict[str, float]
    machine_busy: float
    pids: list[int]
    roles: dict[int, str] = field(default_factory=dict)


class ProcessMeter:
    """CPU seconds and resident memory of a system's processes, by role, over a window.

    The processes are the fixed `pids` plus every descendant of `root` (minus `exclude`),
    enumerated at both ends of the window: a process that appears meanwhile (e.g. a
    replica the autoscaler starts) counts with all the CPU it used, one that disappears
    with what it used until the first reading.
    """

    def __init__(
        self, pids: Sequence[int] = (), root: int | None = None, exclude: Sequence[int] = ()
    ) -> None:
        import psutil

        self._psutil = psutil
        self._pids = list(dict.fromkeys(pids))
        self._root = root
        self._exclude = {*exclude, os.getpid()}
        self._start: dict[int, float] = {}
        self._machine: Any = None
        self.roles: dict[int, str] = {}

    def _procs(self) -> list[Any]:
        psutil = self._psutil
        procs: dict[int, Any] = {}
        for pid in self._pids:
            try:
                procs[pid] = psutil.Process(pid)
            except psutil.Error:
                continue
        if self._root is not None:
            try:
                found = psutil.Process(self._root).children(recursive=True)
            except psutil.Error:
                found = []
            for proc in found:
                if proc.pid not in self._exclude:
                    procs.setdefault(proc.pid, proc)
        return list(procs.values())

    def _read(self, with_rss: bool) -> tuple[dict[int, float], dict[int, float]]:
        cpu, rss = {}, {}
        for proc in self._procs():
            try:
                times = proc.cpu_times()
                # Re-read every time: an idle Ray worker becomes a replica by its title.
                self.roles[proc.pid] = role_of(proc.name(), proc.cmdline())
                if with_rss:
                    rss[proc.pid] = float(proc.memory_info().rss)
            except self._psutil.Error:
                continue
            cpu[proc.pid] = times.user + times.system
        return cpu, rss

    def start(self) -> None:
        """Takes the first reading."""
        self._start, _ = self._read(with_rss=False)
        self._machine = self._psutil.cpu_times()

    def stop(self) -> Reading:
        """The reading since `start` (memory as of now)."""
        end, rss = self._read(with_rss=True)
        machine = self._psutil.cpu_times()
        idle = (machine.idle + machine.iowait) - (self._machine.idle + self._machine.iowait)
        total = sum(machine) - sum(self._machine)
        busy = 1.0 - idle / total if total > 0 else 0.0
        seen = sorted(set(self._start) | set(end))
        used = {pid: max(cpu - self._start.get(pid, 0.0), 0.0) for pid, cpu in end.items()}
        return Reading(
            cpu_s=sum(used.values()) if seen else None,
            cpu_by_role=by_role(used, self.roles),
            rss_by_role=by_role(rss, self.roles),
            machine_busy=busy,
            pids=seen,
            roles={pid: self.roles[pid] for pid in seen if pid in self.roles},
        )
