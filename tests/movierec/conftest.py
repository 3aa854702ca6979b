"""Fixtures of the Redis tests: isolated settings, and a Redis without the query engine."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from movierec.redis_server import HOST, find_binaries, pick_free_port
from movierec.settings import get_settings


@pytest.fixture
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Settings with no REDIS_URL and a private run dir (returned)."""
    run_dir = tmp_path / "run"
    for name in ("REDIS_URL", "MOVIEREC_REDIS_URL", "MOVIEREC_REDIS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MOVIEREC_RUN_DIR", str(run_dir))
    get_settings.cache_clear()
    yield run_dir
    get_settings.cache_clear()


@pytest.fixture
def plain_redis_url(tmp_path: Path) -> Iterator[str]:
    """A password-protected redis-server started WITHOUT the search module."""
    port = pick_free_port()
    password = "plain-redis-secret-4711"
    process = subprocess.Popen(
        [
            str(find_binaries().server),
            "--bind",
            HOST,
            "--port",
            str(port),
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://:{password}@{HOST}:{port}/0"
    try:
        _wait_for_ping(url)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_ping(url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
                client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
