"""Unit tests of the monolith's multi-worker plumbing (no models loaded)."""

from __future__ import annotations

import socket

from benchmarks.stack import free_port
from benchmarks.workers import reuse_port_socket


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
