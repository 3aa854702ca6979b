"""Tests of the command line (`python -m movierec.redis_server`), in subprocesses."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from movierec.redis_server import HOST, RedisPaths, read_state
from movierec.redis_server.process import pid_alive
from movierec.settings import PROJECT_ROOT
from tests.movierec.redis_server._sockets import can_bind


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "movierec.redis_server", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )


def _cli_env(run_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "MOVIEREC_REDIS_URL")}
    env.update(MOVIEREC_RUN_DIR=str(run_dir), **extra)
    return env


@pytest.mark.integration
def test_cli_server_outlives_the_cli(tmp_path: Path) -> None:
    env = _cli_env(tmp_path)
    try:
        started = _run_cli("start", env=env)
        assert started.returncode == 0, started.stderr
        state = read_state(tmp_path)
        assert state is not None
        password = RedisPaths.for_run_dir(tmp_path).password_file.read_text().strip()
        assert password not in started.stdout

        shown = _run_cli("status", env=env)
        assert shown.returncode == 0 and f"port: {state.port}" in shown.stdout
        assert password not in shown.stdout

        printed = _run_cli("url", env=env)
        assert printed.returncode == 0 and printed.stdout.strip() == state.url
        with redis.Redis.from_url(printed.stdout.strip()) as client:
            assert client.ping()

        again = _run_cli("start", env=env)
        assert again.returncode == 0 and read_state(tmp_path) == state
    finally:
        stopped = _run_cli("stop", env=env)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not pid_alive(state.pid)  # may linger as a zombie of PID 1
    assert can_bind(state.port)
    noop = _run_cli("stop", env=env)
    assert noop.returncode == 0 and "not running" in noop.stdout
    assert _run_cli("status", env=env).returncode == 3


@pytest.mark.integration
def test_cli_explicit_port_taken_exits_with_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = _run_cli("start", "--port", str(port), env=_cli_env(tmp_path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: port {port} ")
    assert "Traceback" not in result.stderr


@pytest.mark.integration
def test_cli_url_of_a_redis_without_search_is_a_clean_error(
    isolated_settings: Path, plain_redis_url: str
) -> None:
    result = _run_cli("url", env=_cli_env(isolated_settings, REDIS_URL=plain_redis_url))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "lacks the query engine" in result.stderr
    assert "Traceback" not in result.stderr
    assert "plain-redis-secret" not in result.stderr + result.stdout
