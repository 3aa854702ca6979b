"""A Ray node lost under load: Serve reschedules its replicas on the other node.

Two Ray nodes on this machine (`ray.cluster_utils.Cluster`: a head and a worker node with 2
logical CPUs each), the app in the Serve mode of `make run` with the production budget.
Serve spreads replicas over the nodes (its default SPREAD scheduling; HAProxy and the Serve
controller stay on the head). The worker node is killed (SIGKILL of its raylet and every
process on it, as a crashed machine) while 4 clients send requests; its replicas come back on
the head and the failed requests stay within `FAILED_BOUND` (README "Reliability").
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import psutil
import pytest

from tests.deployments._load import SPEED_REASONS, LoadLoop, report, unexpected_fallbacks
from tests.deployments._replicas import replicas, running
from tests.deployments._serve import Served, serve_tiny_app

pytestmark = pytest.mark.integration

USERS = list(range(1, 61))
CONCURRENCY = 4
DEPLOYMENTS = ("Controller", "Retrieval", "Content", "Features", "Ranking")
STAGES = frozenset(d.lower() for d in DEPLOYMENTS[1:])
FAILED_BOUND = CONCURRENCY
"""Failed requests allowed when a node dies: at most one per client, i.e. what a Controller
replica on that node may have had in flight (HAProxy retries a request whose replica closed
the connection without answering, so 0 is expected and measured; README "Reliability")."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_tiny_app(
        tmp_path_factory, timeouts={}, serve_mode=True, worker_node={"num_cpus": 2}
    ) as app:
        deadline = time.monotonic() + 120
        while app.get("/recommendations/1", k=10).status_code != 200:
            assert time.monotonic() < deadline, "the app never answered"
            time.sleep(0.5)
        yield app


def _placement() -> dict[str, dict[int, str]]:
    """Deployment -> {pid: node id} of its ALIVE replicas."""
    return {d: replicas(d) for d in DEPLOYMENTS}


def _all_back_on(node_id: str, counts: dict[str, int]) -> bool:
    placement = _placement()
    return all(
        len(placement[d]) >= n and set(placement[d].values()) == {node_id} and running(d) >= n
        for d, n in counts.items()
    )


def test_a_lost_node_costs_at_most_the_bound_and_its_replicas_come_back(served: Served) -> None:
    cluster = served.cluster
    (worker,) = cluster.worker_nodes
    head_id, worker_id = cluster.head_node.node_id, worker.node_id
    before = _placement()
    counts = {d: len(pids) for d, pids in before.items()}
    on_worker = {d: [p for p, n in pids.items() if n == worker_id] for d, pids in before.items()}
    print(f"\n[placement] on the worker node: { {d: len(p) for d, p in on_worker.items()} }")
    assert any(on_worker.values()), f"Serve placed no replica on the worker node: {before}"

    with LoadLoop(served.base_url, USERS, concurrency=CONCURRENCY, max_seconds=180) as load:
        time.sleep(2.0)
        killed = time.perf_counter()
        cluster.remove_node(worker, allow_graceful=False)
        removed = time.perf_counter()
        deadline = removed + 150
        while not _all_back_on(head_id, counts):
            assert time.perf_counter() < deadline, f"replicas not back on the head: {_placement()}"
            time.sleep(0.25)
        back = time.perf_counter()
        time.sleep(2.0)
        load.stop()

    assert not any(psutil.pid_exists(p) for pids in on_worker.values() for p in pids)
    outcomes, failed = load.outcomes, load.failed()
    report(
        "worker node killed",
        outcomes,
        replicas_on_worker=sum(len(p) for p in on_worker.values()),
        kill_s=round(removed - killed, 1),
        rescheduled_after_s=round(back - killed, 1),
        failed_bound=FAILED_BOUND,
    )
    assert len(failed) <= FAILED_BOUND, Counter(o.status for o in failed)
    # Stages that were on the lost node may be `unavailable` until they are back.
    allowed = dict.fromkeys(STAGES, SPEED_REASONS | {"unavailable"})
    assert not unexpected_fallbacks(outcomes, allowed)
    after = load.between(back)
    assert after and all(o.status == 200 for o in after)
