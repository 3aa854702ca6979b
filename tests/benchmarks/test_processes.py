"""Unit tests of the process roles (pure, plus one meter of this test's own child)."""

from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from benchmarks.processes import ROLE_LABELS, ROLES, ProcessMeter, by_role, role_of


@pytest.mark.parametrize(
    ("name", "cmdline", "role"),
    [
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Controller"], "controller"),
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Retrieval"], "retrieval"),
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Content"], "content"),
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Features"], "features"),
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Ranking.handle_request"], "ranking"),
        ("ray::ServeRepli", ["ray::ServeReplica:movierec:Events"], "events"),
        ("ray::ServeRepli", ["ray::ServeReplica:other:Unknown"], "ray_other"),
        ("ray::ServeContr", ["ray::ServeController"], "serve_controller"),
        ("ray::ProxyActor", ["ray::ProxyActor"], "proxy"),
        ("haproxy", ["/usr/lib/haproxy", "-f", "/tmp/haproxy.cfg"], "proxy"),
        ("raylet", ["/venv/lib/ray/core/src/ray/raylet/raylet", "--node_ip_address=x"], "raylet"),
        ("gcs_server", ["/venv/lib/ray/core/src/ray/gcs/gcs_server", "--port=1"], "gcs"),
        ("ray::Dashboard", ["ray::DashboardAgent"], "dashboard"),
        ("ray::RuntimeEnv", ["ray::RuntimeEnvAgent"], "dashboard"),
        ("python", ["python", "-u", "/venv/ray/dashboard/agent.py", "--x"], "dashboard"),
        ("ray::IDLE", ["ray::IDLE"], "ray_other"),
        ("python", ["python", "-u", "/venv/ray/_private/log_monitor.py"], "ray_other"),
        ("redis-server", ["redis-server 127.0.0.1:6390"], "redis"),
        ("python", ["python", "-m", "benchmarks.monolith", "--worker", "--port", "1"], "monolith"),
        ("bash", ["bash"], "other"),
        ("sleep", [], "other"),
    ],
)
def test_role_of_reads_ray_process_titles(name: str, cmdline: list[str], role: str) -> None:
    assert role_of(name, cmdline) == role


def test_every_role_has_a_label() -> None:
    assert set(ROLE_LABELS) == set(ROLES)


def test_by_role_sums_in_role_order() -> None:
    values = {1: 0.5, 2: 0.25, 3: 1.0, 4: 2.0}
    roles = {1: "ranking", 2: "ranking", 3: "controller"}  # pid 4 unknown: "other"
    assert by_role(values, roles) == {"controller": 1.0, "ranking": 0.75, "other": 2.0}
    assert list(by_role(values, roles)) == ["controller", "ranking", "other"]


def test_meter_counts_a_descendant_and_its_memory() -> None:
    import os
    import time

    child = subprocess.Popen(  # a busy child of this process: role "other"
        [sys.executable, "-c", "while True: pass"]
    )
    try:
        meter = ProcessMeter(root=os.getpid())
        meter.start()
        # until the child has run a little: on a loaded machine it may wait for a core
        busy = psutil.Process(child.pid)
        used = sum(busy.cpu_times()[:2])
        deadline = time.monotonic() + 60.0
        while sum(busy.cpu_times()[:2]) - used < 0.05 and time.monotonic() < deadline:
            time.sleep(0.1)
        reading = meter.stop()
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.pid in reading.pids
    assert reading.roles[child.pid] == "other"
    assert reading.cpu_s is not None and reading.cpu_s >= reading.cpu_by_role["other"] > 0.0
    assert reading.rss_by_role["other"] > 0
    assert 0.0 <= reading.machine_busy <= 1.0
