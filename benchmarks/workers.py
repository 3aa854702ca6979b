"""The N-worker monolith's plumbing: workers sharing one port, and their supervisor.

`python -m benchmarks.monolith --workers N` runs `supervise`: N worker processes
(`python -m benchmarks.monolith --worker`, each a full pipeline) bound to the same port
with SO_REUSEPORT (`reuse_port_socket`), so the kernel spreads the connections over them.
Each worker prints "serving" on its stdout once uvicorn accepts connections.
"""

from __future__ import annotations

import contextlib
import json
import logging
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 15.0


def reuse_port_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT (not yet listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGTERM when its supervisor dies, however it dies."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def worker_command(port: int, config_path: Path, overrides: Mapping[str, Any]) -> list[str]:
    """The command of one monolith worker (`python -m benchmarks.monolith --worker ...`)."""
    return [
        sys.executable,
        "-m",
        "benchmarks.monolith",
        "--worker",
        "--port",
        str(port),
        "--config",
        str(config_path),
        "--args-json",
        json.dumps(dict(overrides)),
    ]


def supervise(
    command: Sequence[str],
    workers: int,
    ready_file: Path | None = None,
    start_timeout_s: float = 600.0,
) -> int:
    """Runs `workers` copies of `command` (e.g. `worker_command`: full-pipeline workers
    sharing one port) until SIGTERM/SIGINT or until one of them exits; then stops them all
    (bounded: SIGTERM, then SIGKILL after `STOP_TIMEOUT_S`). Workers also die with this
    process, however it dies (PR_SET_PDEATHSIG).

    Args:
        command: One worker's command; it prints "serving" on its stdout once it accepts
            connections.
        workers: How many.
        ready_file: Written (JSON: the workers' pids) once every worker accepts connections.
        start_timeout_s: Seconds for every worker to start.

    Returns:
        The exit status: 0 when stopped by a signal, 1 when a worker failed.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    children: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(workers):
            children.append(
                subprocess.Popen(list(command), stdout=subprocess.PIPE, preexec_fn=_die_with_parent)
            )
        if not _wait_started(children, stop, start_timeout_s):
            return 0 if stop.is_set() else 1
        if ready_file is not None:
            ready_file.write_text(json.dumps({"workers": [c.pid for c in children]}))
        while not stop.wait(0.5):
            if any(c.poll() is not None for c in children):
                logger.error("a monolith worker exited; stopping the others")
                return 1
        return 0
    finally:
        _stop_all(children)


def _wait_started(
    children: Sequence[subprocess.Popen[bytes]], stop: threading.Event, timeout_s: float
) -> bool:
    """Waits for each worker's "serving" line on its stdout; False on failure or stop."""
    pending = {c.stdout.fileno(): c for c in children if c.stdout is not None}
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        for fd in pending:
            selector.register(fd, selectors.EVENT_READ)
        while pending:
            if stop.is_set() or time.monotonic() > deadline:
                return False
            if any(c.poll() is not None for c in children):
                logger.error("a monolith worker exited while starting")
                return False
            for key, _ in selector.select(timeout=0.5):
                child = pending.pop(int(key.fd))
                selector.unregister(key.fd)
                if child.stdout is None or child.stdout.readline().strip() != b"serving":
                    return False
    return True


def _stop_all(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5.0)
