"""Tests of the redis-server process helpers: ports and readiness."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from movierec.redis_server import HOST, RedisPaths, RedisStartTimeoutError, pick_free_port
from movierec.redis_server.process import wait_ready


def test_picked_ports_are_never_6379() -> None:
    assert all(pick_free_port() != 6379 for _ in range(50))


def test_start_timeout_reports_the_log_tail(tmp_path: Path) -> None:
    """A server that accepts connections but never answers times out with its log."""
    paths = RedisPaths.for_run_dir(tmp_path)
    paths.ensure()
    paths.log_file.write_text("old line\n* something went wrong here\n")
    with socket.socket() as mute:
        mute.bind((HOST, 0))
        mute.listen()
        port = mute.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(RedisStartTimeoutError) as caught:
            wait_ready(f"redis://:pw@{HOST}:{port}/0", os.getpid(), port, paths, 0, timeout=0.5)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert f"port {port}" in message and "within 0.5s" in message
    assert "something went wrong here" in message
    assert ":pw@" not in message
