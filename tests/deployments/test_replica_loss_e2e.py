"""A replica killed under load costs no request, in the Serve mode of `make run`.

The real app on real Ray Serve in the mode `make serve` starts (HAProxy in front of the
Controller replicas, gRPC handles between deployments: `deployments.serve_env`), with the
production budget of serve_config.yaml. One replica of each deployment in turn is SIGKILLed
while 4 clients send requests; every request must still get a 200:

* a stage replica: the Controller retries the call once (`StageCaller`, `replica_lost`), on
  another replica if there is one, else falls back until Serve has replaced it;
* a Controller replica (one of two): HAProxy sends the requests it had in flight, and those
  it sends before it notices, to the other one (`retry-on conn-failure empty-response`).

The second Controller replica's idle CPU, the price of that, is measured first.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import psutil
import pytest

from tests.deployments._load import SPEED_REASONS, report, settled, unexpected_fallbacks
from tests.deployments._replicas import kill_under_load, replicas
from tests.deployments._serve import Served, serve_tiny_app

pytestmark = pytest.mark.integration

USERS = list(range(1, 61))
CONCURRENCY = 4
DEPLOYMENTS = ["Controller", "Retrieval", "Content", "Features", "Ranking"]
IDLE_S = 15.0
IDLE_CPU_BOUND = 0.25
"""Generous bound on an idle Controller replica's CPU (share of one core; measured: README)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve_tiny_app(tmp_path_factory, timeouts={}, serve_mode=True) as app:
        deadline = time.monotonic() + 120
        while not settled(app, USERS):
            assert time.monotonic() < deadline, "the app never answered"
            time.sleep(0.5)
        yield app


def test_idle_cpu_of_the_controller_replicas(served: Served) -> None:
    """What the second Controller replica costs when nothing happens: its CPU over IDLE_S
    seconds without requests (Serve's own metrics pushes, health checks, the event loop)."""
    processes = [psutil.Process(pid) for pid in replicas("Controller")]
    assert len(processes) == 2, "serve_config.yaml runs two Controller replicas"
    time.sleep(2.0)  # the last requests' work done
    before = [sum(p.cpu_times()[:2]) for p in processes]
    time.sleep(IDLE_S)
    shares = [(sum(p.cpu_times()[:2]) - b) / IDLE_S for p, b in zip(processes, before, strict=True)]
    print(f"\n[idle Controller replicas, {IDLE_S:.0f} s] CPU share of one core: {shares}")
    assert max(shares) <= IDLE_CPU_BOUND


@pytest.mark.parametrize(
    "deployment", ["Controller", "Retrieval", "Content", "Features", "Ranking"]
)
def test_a_killed_replica_costs_no_request(served: Served, deployment: str) -> None:
    kill = kill_under_load(served.base_url, USERS, deployment, concurrency=CONCURRENCY)
    outcomes = kill.load.outcomes
    report(
        f"{deployment} replica killed (HAProxy mode)",
        outcomes,
        replaced_after_s=round(kill.replaced_after_s, 1),
    )
    assert not kill.load.failed(), Counter(o.status for o in kill.load.failed())
    # The killed stage may be `unavailable` until it is replaced; nothing else may fail.
    allowed = {deployment.lower(): SPEED_REASONS | {"unavailable"}}
    assert not unexpected_fallbacks(outcomes, allowed)
    assert len(outcomes) > 10 * CONCURRENCY  # the load ran through the kill
