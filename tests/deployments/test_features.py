"""The Features stage in process (`Features.func_or_class`) on tiny real artifacts in Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from deployments.common import StageUnavailableError
from deployments.features import Features
from movierec.payloads import UserProfile
from tests.deployments._inprocess import TinyStage, liked_and_seen, tiny_stage

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStage]:
    with tiny_stage(tmp_path_factory) as built:
        yield built


def _features(stage: TinyStage) -> Any:
    return Features.func_or_class(stage.context)


def test_user_is_the_profile_of_the_training_split(stage: TinyStage) -> None:
    user_id = int(stage.artifacts.train["user_id"].iloc[0])
    liked, seen = liked_and_seen(stage.artifacts, user_id)

    async def scenario() -> tuple[UserProfile | None, UserProfile | None, dict[str, Any]]:
        features = _features(stage)
        await features.reconfigure({})
        return await features.user(user_id), await features.user(999_999), await features.health()

    profile, unknown, health = asyncio.run(scenario())
    assert profile is not None and profile.user_id == user_id
    assert profile.seen == frozenset(seen) and profile.liked == tuple(liked)
    assert profile.features["user_rating_count"] == len(seen)
    assert "liked_movie_ids" not in profile.features  # the history travels as liked/seen
    assert unknown is None  # cold start
    assert health["status"] == "ok" and health["detail"]["reconnects"] == 0


def test_a_redis_without_the_features_makes_the_stage_unavailable(stage: TinyStage) -> None:
    empty = redis.Redis.from_url(stage.redis_url)
    key = stage.artifacts.layout.features_version_key
    mark = empty.get(key)

    async def scenario() -> tuple[dict[str, Any], UserProfile | None, dict[str, Any]]:
        features = _features(stage)
        await features.reconfigure({})  # the store is missing: no crash
        with pytest.raises(StageUnavailableError, match="run the loader"):
            await features.user(1)
        down = await features.health()
        await features.check_health()  # Redis lost its data for everyone: no strike
        empty.set(key, mark or b"1")
        await asyncio.sleep(1.05)  # the retry interval
        return down, await features.user(1), await features.health()

    empty.delete(key)
    try:
        down, profile, up = asyncio.run(scenario())
    finally:
        empty.set(key, mark or b"1")
        empty.close()
    assert down["status"] == "unavailable" and "run the loader" in down["detail"]["error"]
    assert profile is not None and up["status"] == "ok"


def test_an_unreachable_redis_makes_the_stage_unavailable(stage: TinyStage) -> None:
    dead = stage.context.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})

    async def scenario() -> dict[str, Any]:
        features = Features.func_or_class(dead)
        await features.reconfigure({})
        with pytest.raises(StageUnavailableError, match="feature store unavailable"):
            await features.user(1)
        await features.check_health()  # a fresh connection fails too: no strike
        result: dict[str, Any] = await features.health()
        return result

    health = asyncio.run(scenario())
    assert health["status"] == "unavailable" and "redis://" not in str(health)
