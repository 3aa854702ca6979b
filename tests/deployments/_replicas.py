"""The running app's Serve replicas as processes: which pids, on which Ray node; killing one
under load and waiting for Serve to replace it. For the end-to-end tests (Ray in-process)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tests.deployments._load import LoadLoop


def replicas(deployment: str, app: str = "movierec") -> dict[int, str]:
    """Pid -> Ray node id (hex) of every ALIVE replica actor of `deployment`."""
    from ray._private.state import actors

    name = f"ServeReplica:{app}:{deployment}"
    alive = actors(actor_state_name="ALIVE").values()
    return {a["Pid"]: a["Address"]["NodeID"] for a in alive if a["ActorClassName"] == name}


def running(deployment: str, app: str = "movierec") -> int:
    """How many replicas of `deployment` Serve reports RUNNING."""
    from ray import serve

    status = serve.status().applications[app].deployments[deployment]
    return sum(n for state, n in status.replica_states.items() if state == "RUNNING")


def wait_replaced(
    deployment: str, gone: set[int], count: int, timeout: float = 300.0, app: str = "movierec"
) -> float:
    """Waits until no replica of `deployment` has a pid in `gone` and Serve reports `count`
    replicas RUNNING again; returns when that was first seen (perf_counter s).

    Raises:
        AssertionError: Not within `timeout` seconds.
    """
    deadline = time.perf_counter() + timeout
    while True:
        now = time.perf_counter()
        alive = replicas(deployment, app)
        if not gone & set(alive) and len(alive) >= count and running(deployment, app) >= count:
            return now
        assert now < deadline, f"Serve did not replace {deployment} {gone}: {alive}"
        time.sleep(0.25)


@dataclass
class Kill:
    """A replica killed (SIGKILL) under load: the load's outcomes and the recovery time."""

    load: LoadLoop
    deployment: str
    victim: int
    killed: float
    """perf_counter s of the kill."""
    replaced_after_s: float


def kill_under_load(
    base_url: str,
    users: Sequence[int],
    deployment: str,
    *,
    concurrency: int = 4,
    settle_s: float = 2.0,
    app: str = "movierec",
) -> Kill:
    """Sends `concurrency` clients' requests, SIGKILLs one replica of `deployment` after
    `settle_s`, waits until Serve has replaced it, sends `settle_s` more, then stops.

    Raises:
        AssertionError: The deployment has no replica, or it was not replaced in time.
    """
    before = replicas(deployment, app)
    assert before, f"{deployment} has no replica"
    victim = min(before)
    with LoadLoop(base_url, users, concurrency=concurrency, max_seconds=180) as load:
        time.sleep(settle_s)
        killed = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        back = wait_replaced(deployment, {victim}, len(before), app=app)
        time.sleep(settle_s)
        load.stop()
    return Kill(load, deployment, victim, killed, back - killed)


DEPLOYMENTS = ("Controller", "Retrieval", "Content", "Features", "Ranking")


def replica_pids(app: str = "movierec") -> dict[str, frozenset[int]]:
    """Deployment -> the pids of its ALIVE replicas (a changed set: a replica restarted;
    `/healthz` shows only the replica that answered, and the Controller has two)."""
    return {d: frozenset(replicas(d, app)) for d in DEPLOYMENTS}
