"""Unit tests of the Ray Serve mode variables (pure logic)."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployments.serve_env import (
    DEFAULT_MODE_ENV,
    MAX_HAPROXY_DIR,
    SERVE_ENV,
    haproxy_dir,
    haproxy_paths,
    haproxy_ports,
    main,
    serve_env,
    uses_haproxy,
)


def test_serve_env_defaults_and_overrides() -> None:
    assert serve_env({}) == dict(SERVE_ENV)
    assert serve_env({"RAY_SERVE_ENABLE_HA_PROXY": "0"})["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    default_mode = serve_env({DEFAULT_MODE_ENV: "1"})
    assert default_mode == {
        "RAY_worker_niceness": "0",
        "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
        "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000",
    }
    assert uses_haproxy(serve_env({})) and not uses_haproxy(default_mode)


def test_haproxy_ports() -> None:
    assert haproxy_ports(1, 2) == {
        "RAY_SERVE_HAPROXY_STATS_PORT": "1",
        "RAY_SERVE_HAPROXY_METRICS_PORT": "2",
    }


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path (pytest's tmp_path is too long for a unix socket)."""
    path = Path(tempfile.mkdtemp(prefix="mr-", dir="/tmp"))
    assert len(str(path / "haproxy")) <= MAX_HAPROXY_DIR
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_haproxy_files_go_to_a_private_directory(short_dir: Path) -> None:
    short = short_dir / "r"
    directory = haproxy_dir(short)
    assert directory == short.resolve() / "haproxy"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    paths = haproxy_paths(directory)
    assert paths["RAY_SERVE_HAPROXY_SOCKET_PATH"] == str(directory / "admin.sock")
    assert all(value.startswith(str(directory)) for value in paths.values())


def test_a_run_dir_too_long_for_a_unix_socket_gets_a_short_private_directory(
    tmp_path: Path,
) -> None:
    deep = tmp_path / ("d" * 80)
    directory = haproxy_dir(deep)
    assert len(str(directory)) <= MAX_HAPROXY_DIR
    assert directory.name.startswith(f"mr-hap-{os.geteuid()}-")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert haproxy_dir(deep) == directory  # stable
    directory.rmdir()


def test_a_directory_others_can_enter_is_refused(short_dir: Path) -> None:
    (short_dir / "haproxy").mkdir()
    (short_dir / "haproxy").chmod(0o755)
    with pytest.raises(PermissionError):
        haproxy_dir(short_dir)


def test_main_prints_the_mode_and_haproxy_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from movierec.settings import get_settings

    monkeypatch.setenv("MOVIEREC_RUN_DIR", str(tmp_path / ("deep" * 20)))
    get_settings.cache_clear()
    try:
        assert main([]) == 0
    finally:
        get_settings.cache_clear()
    printed = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert printed["RAY_SERVE_ENABLE_HA_PROXY"] == "1"
    socket_dir = Path(printed["RAY_SERVE_HAPROXY_SOCKET_PATH"]).parent
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    socket_dir.rmdir()


def test_main_runs_a_command_under_the_mode(tmp_path: Path) -> None:
    """`-- COMMAND`: the values reach the command whole (HAProxy's retry-on has a space)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "MOVIEREC_RUN_DIR": str(tmp_path)}
    env.pop("MOVIEREC_SERVE_DEFAULT_MODE", None)
    show = "import os; print(os.environ['RAY_SERVE_HAPROXY_RETRY_ON'])"
    command = [sys.executable, "-m", "deployments.serve_env", "--", sys.executable, "-c", show]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "conn-failure empty-response"
    assert main(["ray", "start"]) == 2  # without `--`: refused, not run
