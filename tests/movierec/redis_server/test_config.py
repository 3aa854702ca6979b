"""Tests of the generated redis.conf."""

from __future__ import annotations

from pathlib import Path

from movierec.redis_server import HOST, RedisBinaries, RedisPaths
from movierec.redis_server.config import build_url, render_config


def _render(tmp_path: Path, *, persist: bool) -> str:
    paths = RedisPaths.for_run_dir(tmp_path / 'run "quoted"')
    binaries = RedisBinaries(server=tmp_path / "redis-server", search_module=tmp_path / "rs.so")
    return render_config(paths, binaries, 4711, "ab12", persist)


def test_config_binds_loopback_with_password_and_fails_slow_queries(tmp_path: Path) -> None:
    lines = _render(tmp_path, persist=False).splitlines()
    assert f"bind {HOST}" in lines
    assert "protected-mode yes" in lines
    assert "port 4711" in lines and "requirepass ab12" in lines
    assert f'loadmodule "{tmp_path / "rs.so"}" ON_TIMEOUT FAIL' in lines
    assert 'save ""' in lines
    assert any(line.startswith("dir ") and '\\"quoted\\"' in line for line in lines)


def test_persisting_config_keeps_snapshots(tmp_path: Path) -> None:
    assert "save 3600 1 300 100 60 10000" in _render(tmp_path, persist=True).splitlines()


def test_config_keeps_an_append_only_file_for_the_event_log(tmp_path: Path) -> None:
    for persist in (False, True):
        lines = _render(tmp_path, persist=persist).splitlines()
        assert "appendonly yes" in lines and "appendfsync everysec" in lines


def test_url_points_at_loopback() -> None:
    assert build_url("ab12", 4711) == f"redis://:ab12@{HOST}:4711/0"
