"""Pure helpers of the deployments: error handling, caches, side features (the Redis client
that reconnects: test_redis_resource.py)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import CatchAllMiddleware
from deployments.common import (
    StageUnavailableError,
    describe,
    health_payload,
    probe_model,
    public_reason,
)
from models.features.cache import MovieFeatureCache


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
