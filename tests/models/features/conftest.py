"""Fixtures for the feature store tests: a real Redis (the project's embedded launcher)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from movierec.redis_server import embedded_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis:// URL (password, free port on 127.0.0.1) of a throwaway Redis for this session."""
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url
