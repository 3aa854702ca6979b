"""Tests of the embedded server's private files and its inter-process lock."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from movierec.redis_server import RedisPaths, RedisServerError
from movierec.redis_server.files import locked, log_tail, write_private


def test_private_files_are_0600_and_replaced_atomically(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_text("old")
    target.chmod(0o644)
    write_private(target, "new")
    assert target.read_text() == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temp file left


def test_log_tail_reads_from_the_offset(tmp_path: Path) -> None:
    log = tmp_path / "redis.log"
    log.write_text("before\n")
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.write("after\n")
    assert log_tail(log, offset) == "  after"
    assert "is empty" in log_tail(tmp_path / "missing.log")


def test_a_held_lock_times_out_with_a_clear_error(tmp_path: Path) -> None:
    paths = RedisPaths.for_run_dir(tmp_path)
    with locked(paths, timeout=1.0):
        assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700
        with pytest.raises(RedisServerError, match="another process"), locked(paths, 0.2):
            pass
