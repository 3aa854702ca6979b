"""Fixtures for the feature store tests: a real Redis (the project's embedded launcher) and
the hand-computed dataset of `_tiny` built into it (apply + materialize)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.features import OnlineFeatures, build_feature_store
from movierec.redis_server import embedded_redis
from tests.models.features import _tiny


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """redis:// URL (password, free port on 127.0.0.1) of a throwaway Redis for this session."""
    with embedded_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def built(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `_tiny` feature store, materialized into db 0 of `redis_url`; its data dir."""
    data_dir = tmp_path_factory.mktemp("features")
    build_feature_store(
        _tiny.ratings(),
        _tiny.movies(),
        _tiny.users(),
        data_dir=data_dir,
        redis_url=redis_url,
        config=_tiny.CONFIG,
    )
    return data_dir


@pytest.fixture(scope="session")
def reader(redis_url: str, built: Path) -> OnlineFeatures:
    """The runtime's reader on the built store."""
    return OnlineFeatures.open(redis_url, built / "registry.db")
