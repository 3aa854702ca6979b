"""Pure helpers of the deployments: error handling, caches, lazy resources, side features."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pandas as pd
import pytest
import redis
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import CatchAllMiddleware
from deployments.common import (
    LazyResource,
    ReplicaHealth,
    StageUnavailableError,
    describe,
    fail_fast,
    health_payload,
    lost_dependency,
    probe_model,
    public_reason,
)
from deployments.features import MovieFeatureCache
from deployments.retrieval import UserSideFeatures
from deployments.service import RequestTrace


def test_unhandled_errors_become_json_500_without_traceback() -> None:
    app = FastAPI()
    app.add_middleware(CatchAllMiddleware)

    @app.get("/boom")
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret internals: redis://:pw@host/0")

    @app.get("/fine")
    async def fine() -> dict[str, str]:
        return {"ok": "yes"}

    client = TestClient(app, raise_server_exceptions=False)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "Traceback" not in response.text and "secret" not in response.text
    assert client.get("/fine").json() == {"ok": "yes"}


def test_describe_is_short_and_never_leaks_a_redis_url() -> None:
    assert describe(TimeoutError()) == "timeout"
    assert describe(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert describe(KeyError()) == "KeyError"
    leaked = describe(ConnectionError("cannot reach redis://:pw@127.0.0.1:6400/0"))
    assert "pw" not in leaked and leaked == "ConnectionError: connection error"
    assert len(describe(RuntimeError("x" * 1000))) < 250


def test_clients_see_only_a_failure_category() -> None:
    assert public_reason(TimeoutError()) == "timeout"
    assert public_reason(StageUnavailableError("no ranker at /srv/secret/path")) == "unavailable"
    assert public_reason(ValueError("/srv/secret/path")) == "error"


def test_health_payload_carries_the_pid() -> None:
    payload = health_payload("ok", k=5)
    assert payload["status"] == "ok" and payload["detail"] == {"k": 5}
    assert isinstance(payload["pid"], int)


def test_request_trace() -> None:
    trace = RequestTrace()
    trace.timings["retrieval"] = 1.234
    trace.fail("ranking", "timeout")
    assert trace.fallbacks[0].stage == "ranking"
    header = trace.server_timing()
    assert header.startswith("retrieval;dur=1.23, total;dur=")


def test_lazy_resource_retries_after_a_failure() -> None:
    attempts: list[int] = []

    async def factory() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("redis down")
        return "client"

    async def scenario() -> None:
        resource: LazyResource[str] = LazyResource(factory, "thing", retry_s=0.05)
        with pytest.raises(StageUnavailableError, match="thing unavailable: ConnectionError"):
            await resource.get()
        assert resource.error and not resource.ready
        with pytest.raises(RuntimeError):  # within retry_s: no new attempt
            await resource.get()
        assert len(attempts) == 1
        await asyncio.sleep(0.06)
        assert await resource.get() == "client"
        assert resource.current == "client" and resource.error is None
        assert await resource.get() == "client" and len(attempts) == 2

    asyncio.run(scenario())


def test_a_resource_that_loses_redis_is_rebuilt_on_a_later_call() -> None:
    built: list[str] = []
    closed: list[str] = []

    async def factory() -> str:
        built.append(f"client-{len(built) + 1}")
        return built[-1]

    async def close(value: str) -> None:
        closed.append(value)

    async def scenario() -> None:
        resource: LazyResource[str] = LazyResource(factory, "thing", retry_s=0.05, close=close)
        with pytest.raises(StageUnavailableError, match="lost its dependency"):
            async with resource.use() as client:
                assert client == "client-1"
                raise redis.exceptions.ConnectionError("Connection refused")
        assert not resource.ready and closed == ["client-1"]
        async with resource.use() as client:  # rebuilt: the URL is resolved again
            assert client == "client-2"
        with pytest.raises(ValueError, match="a bug"):  # not a lost dependency: kept
            async with resource.use():
                raise ValueError("a bug")
        assert resource.current == "client-2" and resource.rebuilds == 2
        await resource.invalidate("client-1", "stale")  # no longer current: ignored
        assert resource.current == "client-2"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("exc", "lost"),
    [
        (redis.exceptions.ConnectionError("refused"), True),
        (redis.exceptions.AuthenticationError("invalid password"), True),
        (redis.exceptions.BusyLoadingError("loading"), True),
        (redis.exceptions.ResponseError("movies_v1: no such index"), True),
        (redis.exceptions.ResponseError("Syntax error at offset 3"), False),
        (ConnectionResetError(), True),
        (ValueError("x"), False),
    ],
)
def test_lost_dependency(exc: BaseException, lost: bool) -> None:
    assert lost_dependency(exc) is lost


def test_a_fail_fast_client_gives_up_on_a_gone_redis_at_once() -> None:
    """A killed Redis (nothing listens on its port): the call fails in milliseconds, where
    redis-py's default retries sleep with backoff for seconds (a stage timeout)."""
    import socket

    import redis.asyncio

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def ping() -> float:
        client = fail_fast(redis.asyncio.Redis(host="127.0.0.1", port=port))
        started = time.perf_counter()
        try:
            with pytest.raises(redis.exceptions.ConnectionError):
                await client.ping()
        finally:
            await client.aclose()
        return time.perf_counter() - started

    assert asyncio.run(ping()) < 0.5
    assert fail_fast(redis.Redis()).get_retry().get_retries() == 1  # sync clients too


def test_a_replica_is_replaced_only_when_it_alone_cannot_use_the_dependency() -> None:
    health = ReplicaHealth("features", strikes=2)
    for _ in range(5):  # Redis down for everyone: a new replica would not help
        health.record(usable=False, dependency_ready=False)
    health.record(usable=False, dependency_ready=True, detail="stuck pool")
    health.record(usable=True, dependency_ready=True)  # recovered: the count restarts
    health.record(usable=False, dependency_ready=True, detail="stuck pool")
    with pytest.raises(RuntimeError, match=r"\(2 checks in a row\): stuck pool"):
        health.record(usable=False, dependency_ready=True, detail="stuck pool")


def test_a_model_probe_fails_the_health_check_only_when_a_loaded_model_breaks() -> None:
    asyncio.run(probe_model("ranker", None))  # not loaded: not the replica's fault
    asyncio.run(probe_model("ranker", lambda: 1.0))

    def broken() -> float:
        raise ValueError("NaN in the embedding table")

    with pytest.raises(RuntimeError, match="ranker broken: ValueError: NaN"):
        asyncio.run(probe_model("ranker", broken))


def test_movie_feature_cache_expires_and_evicts() -> None:
    cache = MovieFeatureCache(ttl_s=10.0, max_size=2)
    cache.put_many({1: {"a": 1}, 2: {"a": 2}}, now=0.0)
    found, missing = cache.get_many([1, 2, 3], now=5.0)
    assert found == {1: {"a": 1}, 2: {"a": 2}} and missing == [3]
    cache.put_many({3: {"a": 3}}, now=5.0)  # evicts the least recently used (1)
    assert len(cache) == 2
    found, missing = cache.get_many([1, 3], now=6.0)
    assert list(found) == [3] and missing == [1]
    _, missing = cache.get_many([3], now=20.0)  # expired
    assert missing == [3]
    assert (cache.hits, cache.misses) == (3, 3)
    cache.resize(0.0, 10)  # disabled: cleared, stores nothing
    cache.put_many({4: {}}, now=0.0)
    assert len(cache) == 0


def test_user_side_features_prefer_the_retrieval_export(tmp_path: Path) -> None:
    retrieval, features = tmp_path / "retrieval", tmp_path / "features"
    retrieval.mkdir()
    features.mkdir()
    assert len(UserSideFeatures.load(retrieval, features)) == 0
    pd.DataFrame(
        {
            "user_id": [1, 1, 2],
            "event_timestamp": pd.to_datetime([1, 2, 1], unit="s", utc=True),
            "user_age": [20, 21, None],
            "user_gender": ["M", "M", "F"],
            "user_occupation": ["x", "y", None],
        }
    ).to_parquet(features / "user_demographics.parquet")
    table = UserSideFeatures.load(retrieval, features)
    assert table.features(1) == {"age": [21], "gender": ["M"], "occupation": ["y"]}
    assert table.features(2)["age"] == [None]
    assert table.features(3) == {}
    pd.DataFrame({"user_id": [1], "age": [30], "zip_code": ["12345"]}).to_parquet(
        retrieval / "users.parquet"
    )
    own = UserSideFeatures.load(retrieval, features)
    assert own.features(1) == {"age": [30], "zip_code": ["12345"]}
    assert own.source.endswith("users.parquet")
