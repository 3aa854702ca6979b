"""The Events stage in process (`Events.func_or_class`) on tiny real artifacts in a real Redis:
durable ingestion, deduplication, and the applier writing the online features (Feast)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from deployments.events import RATE, EventLogUnavailableError, Events
from deployments.features import Features
from movierec.events import Event, EventKeys, RateLimitedError
from movierec.payloads import UserProfile
from tests.deployments._inprocess import TinyStage, liked_and_seen, tiny_stage

pytestmark = pytest.mark.integration

APPLY_BOUND_S = 10.0


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStage]:
    with tiny_stage(tmp_path_factory) as built:
        yield built


def _event(user_id: int, movie_id: int, kind: str, value: float | None = None, **kw: Any) -> Event:
    now = time.time()
    return Event(user_id, movie_id, kind, value, now, now, kw.get("event_id"))  # type: ignore[arg-type]


async def _until(check: Callable[[], Awaitable[bool]], bound: float = APPLY_BOUND_S) -> float:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < bound, "events not applied in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


def test_events_are_logged_once_and_move_the_online_features(stage: TinyStage) -> None:
    user_id = int(stage.artifacts.train["user_id"].iloc[0])
    liked, seen = liked_and_seen(stage.artifacts, user_id)
    movies = sorted(int(m) for m in stage.artifacts.train["movie_id"].unique())
    fresh = [m for m in movies if m not in seen][:3]
    batch = [
        _event(user_id, fresh[0], "rating", 5.0, event_id="a1"),
        _event(user_id, fresh[1], "watch", event_id="a2"),
        _event(user_id, liked[0], "dismiss", event_id="a3"),
        _event(user_id, fresh[2], "click"),
    ]

    async def scenario() -> tuple[Any, Any, UserProfile | None, float, dict[str, Any]]:
        events = Events.func_or_class(stage.context)
        features = Features.func_or_class(stage.context)
        await features.reconfigure({})
        await events.reconfigure({})
        first = await events.ingest(batch)
        again = await events.ingest(batch[:3])  # a client retrying with the same ids

        async def applied() -> bool:
            profile = await features.user(user_id)
            return profile is not None and fresh[0] in profile.liked

        lag = await _until(applied)
        profile = await features.user(user_id)

        async def acknowledged() -> bool:  # the loop acknowledges after the features moved
            health = await events.health()
            return bool(health["detail"]["applier"]["entries"] >= 4)

        await _until(acknowledged)
        health = await events.health()
        await events.reconfigure({"apply": False})  # stops the applier
        return first, again, profile, lag, health

    first, again, profile, lag, health = asyncio.run(scenario())
    print(f"\nevents applied {lag * 1000:.0f} ms after the 202")
    assert (first.accepted, first.duplicates) == (4, 0)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert profile is not None
    assert profile.liked[:2] == (fresh[0], fresh[2])  # the like, then the click
    assert liked[0] not in profile.liked  # dismissed
    assert {fresh[0], fresh[1], liked[0]} <= profile.seen and fresh[2] not in profile.seen
    assert profile.features["user_rating_count"] == len(seen) + 1
    assert health["status"] == "ok" and health["detail"]["applier"]["entries"] >= 4
    log = redis.Redis.from_url(stage.redis_url)
    assert log.xlen(EventKeys(stage.artifacts.layout.namespace).stream) == 4  # nothing twice


def test_a_new_user_with_likes_is_no_longer_unknown(stage: TinyStage) -> None:
    new_user = 900_001
    movie = int(stage.artifacts.train["movie_id"].iloc[0])

    async def scenario() -> UserProfile | None:
        events = Events.func_or_class(stage.context)
        features = Features.func_or_class(stage.context)
        await features.reconfigure({})
        await events.reconfigure({})
        assert await features.user(new_user) is None
        await events.ingest([_event(new_user, movie, "rating", 4.5)])

        async def known() -> bool:
            return await features.user(new_user) is not None

        await _until(known)
        await events.reconfigure({"apply": False})
        return await features.user(new_user)

    profile = asyncio.run(scenario())
    assert profile is not None and profile.liked == (movie,) and profile.seen == {movie}
    assert profile.features["user_rating_count"] == 1


def test_a_client_over_its_rate_is_refused_until_its_second_ends(stage: TinyStage) -> None:
    async def scenario() -> tuple[int, int]:
        events = Events.func_or_class(stage.context)
        await events.reconfigure({"apply": False, "rate_limit_per_s": 3})
        with pytest.raises(RateLimitedError) as refused:
            await events.ingest([_event(1, 1, "impression")] * 4, "client-a")
        other = await events.ingest([_event(1, 1, "impression")] * 2, "client-b")  # per client
        return refused.value.retry_after_s, other.accepted

    retry_after, other = asyncio.run(scenario())
    assert retry_after == 1 and other == 2
    # Requests add up within the client's second: two in one Redis transaction (two posts
    # through `ingest` would each wait up to a second for the AOF fsync, past the window).
    pipe = redis.Redis.from_url(stage.redis_url).pipeline(transaction=True)
    pipe.eval(RATE, 1, "test:rate:client-c", 2, 3)
    pipe.eval(RATE, 1, "test:rate:client-c", 2, 3)
    allowed, wait_ms = pipe.execute()
    assert allowed == -1 and 0 < wait_ms <= 1000


def test_an_unreachable_redis_refuses_the_events(stage: TinyStage) -> None:
    dead = stage.context.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})

    async def scenario() -> None:
        events = Events.func_or_class(dead)
        await events.reconfigure({"apply": False})
        with pytest.raises(EventLogUnavailableError):
            await events.ingest([_event(1, 1, "watch")])

    asyncio.run(scenario())


def test_a_redis_without_an_append_only_file_refuses_durable_events(stage: TinyStage) -> None:
    client = redis.Redis.from_url(stage.redis_url)
    client.config_set("appendonly", "no")

    async def scenario() -> tuple[int, int]:
        events = Events.func_or_class(stage.context)
        await events.reconfigure({"apply": False})
        with pytest.raises(EventLogUnavailableError, match="AOF off"):
            await events.ingest([_event(1, 1, "watch", event_id="no-aof")])
        await events.reconfigure({"apply": False, "durability": "none"})
        result = await events.ingest([_event(1, 1, "watch", event_id="no-aof")])
        return result.accepted, result.duplicates

    try:
        # the refused request was logged but not acknowledged: its retry is a duplicate
        assert asyncio.run(scenario()) == (0, 1)
    finally:
        client.config_set("appendonly", "yes")


def test_forgetting_a_user_removes_their_events_and_event_driven_features(
    stage: TinyStage,
) -> None:
    known = int(stage.artifacts.train["user_id"].iloc[-1])
    liked, seen = liked_and_seen(stage.artifacts, known)
    new_user = 900_002
    log = redis.Redis.from_url(stage.redis_url)
    keys = EventKeys(stage.artifacts.layout.namespace)
    movies = sorted(int(m) for m in stage.artifacts.train["movie_id"].unique())
    fresh = next(m for m in movies if m not in seen)

    async def scenario() -> tuple[Any, Any, UserProfile | None, UserProfile | None]:
        events = Events.func_or_class(stage.context)
        features = Features.func_or_class(stage.context)
        await features.reconfigure({})
        await events.reconfigure({})
        await events.ingest([_event(known, fresh, "rating", 5.0), _event(new_user, fresh, "watch")])

        async def applied() -> bool:  # the applier's last write for a user: its users set
            return bool(
                log.sismember(keys.users, str(known)) and log.sismember(keys.users, str(new_user))
            )

        await _until(applied)
        await events.reconfigure({"apply": False})
        gone_known = await events.forget(known)
        gone_new = await events.forget(new_user)
        return gone_known, gone_new, await features.user(known), await features.user(new_user)

    gone_known, gone_new, back, unknown = asyncio.run(scenario())
    assert (gone_known.events, gone_known.movies) == (1, 1)
    assert (gone_new.events, gone_new.movies) == (1, 1)
    # back to the build's row (its liked list holds at most 50 movies)
    assert back is not None and back.seen == frozenset(seen) and back.liked == tuple(liked[:50])
    assert unknown is None  # a cold start again
    assert not log.exists(keys.state(known), keys.base(known), keys.state(new_user))


def test_the_log_is_copied_to_parquet_part_files_once_and_a_deletion_drops_it(
    stage: TinyStage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import pandas as pd

    from models.features.event_log import entry_position, read_events, tombstones

    directory = tmp_path_factory.mktemp("offline")
    user_id = 900_003
    movie = int(stage.artifacts.train["movie_id"].iloc[1])

    async def scenario() -> tuple[pd.DataFrame, pd.DataFrame]:
        events = Events.func_or_class(stage.context)
        await events.reconfigure({"offline_dir": str(directory)})
        await events.ingest(
            [
                _event(user_id, movie, "rating", 3.5, event_id="off-1"),
                _event(user_id, movie, "watch"),
            ]
        )

        async def exported() -> bool:
            frame = read_events(directory)
            return bool((frame["user_id"] == user_id).sum() == 2)

        await _until(exported)
        await events.reconfigure({"apply": False})
        before = read_events(directory)
        await events.forget(user_id)  # DELETE /users/{id}/events: the part files too
        return before, read_events(directory)

    before, after = asyncio.run(scenario())
    mine = before[before["user_id"] == user_id]
    assert mine["type"].tolist() == ["rating", "watch"] and mine["value"].iloc[0] == 3.5
    assert before["entry_id"].is_unique  # every logged event once (earlier tests' too)
    assert after["entry_id"].tolist() == before[before["user_id"] != user_id]["entry_id"].tolist()
    raw = pd.concat([pd.read_parquet(f) for f in directory.glob("*.parquet")])
    assert not (raw["user_id"] == user_id).any()  # compacted away, not only hidden
    assert tombstones(directory)[user_id] >= entry_position(mine["entry_id"].iloc[-1])
