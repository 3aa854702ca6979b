"""Unit tests of the N-worker monolith's plumbing: shared port, supervisor (fake workers, no
models loaded)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.stack import ROOT, free_port
from benchmarks.workers import reuse_port_socket, worker_command

SERVING = "import time; print('serving', flush=True); time.sleep(120)"
FAILING = "import sys, time; print('serving', flush=True); time.sleep(0.5); sys.exit(3)"


def test_workers_can_bind_the_same_port() -> None:
    port = free_port()
    first, second = reuse_port_socket(port), reuse_port_socket(port)
    try:
        for sock in (first, second):
            sock.listen()
            assert sock.getsockname() == ("127.0.0.1", port)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # one of the two accepts it (the kernel picks)
    finally:
        first.close()
        second.close()


def test_worker_command_runs_the_monolith_as_a_worker() -> None:
    command = worker_command(8123, Path("serve_config.yaml"), {"variant": "ml-100k"})
    assert command[1:4] == ["-m", "benchmarks.monolith", "--worker"]
    assert command[command.index("--port") + 1] == "8123"
    assert json.loads(command[command.index("--args-json") + 1]) == {"variant": "ml-100k"}


def _supervisor(worker_code: str, workers: int, ready: Path) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; from benchmarks.workers import supervise; "
        f"sys.exit(supervise([sys.executable, '-c', {worker_code!r}], {workers}, "
        f"Path({str(ready)!r}), start_timeout_s=60))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)


def _wait_for(path: Path, process: subprocess.Popen[bytes]) -> list[int]:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None, "the supervisor exited before its workers served"
        assert time.monotonic() < deadline, "workers not ready in 60 s"
        time.sleep(0.1)
    time.sleep(0.1)  # written in one go; let the write finish
    pids: list[int] = json.loads(path.read_text())["workers"]
    return pids


def _gone(pids: list[int], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_stopping_the_supervisor_stops_every_worker(signum: int, tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    supervisor = _supervisor(SERVING, 2, ready)
    try:
        pids = _wait_for(ready, supervisor)
        assert len(set(pids)) == 2
        supervisor.send_signal(signum)  # SIGKILL: the workers get SIGTERM from the kernel
        status = supervisor.wait(timeout=60)
        assert status == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
        assert _gone(pids), "a worker outlived its supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=30)


def test_a_worker_that_dies_stops_the_others(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    supervisor = _supervisor(FAILING, 2, ready)
    try:
        pids = _wait_for(ready, supervisor)  # both served, then one exits
        assert supervisor.wait(timeout=60) == 1
        assert _gone(pids)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait(timeout=30)
