"""The Redis client that reconnects (`deployments.redis_resource`): lazy resources, the
replica-health verdict, and `RedisResource` against a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio

from deployments.common import StageUnavailableError
from deployments.redis_resource import (
    LazyResource,
    RedisResource,
    ReplicaHealth,
    lost_dependency,
)


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


def test_a_replica_is_replaced_only_when_it_alone_cannot_use_the_dependency() -> None:
    health = ReplicaHealth("features", strikes=2)
    for _ in range(5):  # Redis down for everyone: a new replica would not help
        health.record(usable=False, dependency_ready=False)
    health.record(usable=False, dependency_ready=True, detail="stuck pool")
    health.record(usable=True, dependency_ready=True)  # recovered: the count restarts
    health.record(usable=False, dependency_ready=True, detail="stuck pool")
    with pytest.raises(RuntimeError, match=r"\(2 checks in a row\): stuck pool"):
        health.record(usable=False, dependency_ready=True, detail="stuck pool")


class _Client:
    """A fake stage client: a real connection on the URL it was opened with."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.redis = redis.asyncio.Redis.from_url(url, socket_timeout=2.0)
        self.closed = False

    async def close(self) -> None:
        self.closed = True
        await self.redis.aclose()


def _resource(urls: list[str], key: str, retry_s: float = 0.0) -> RedisResource[_Client]:
    """A resource on urls[0] (tests swap it, as a Redis restarted elsewhere would) whose data
    is the key `key`."""

    def resolve_url(*, verify: bool = True) -> str:
        return urls[0]

    async def open_client(url: str) -> _Client:
        return _Client(url)

    async def has_data(client: redis.asyncio.Redis) -> bool:
        return bool(await client.exists(key))

    async def close(client: _Client) -> None:
        await client.close()

    return RedisResource(
        "thing", resolve_url, open_client, has_data, missing="no data", close=close, retry_s=retry_s
    )


async def _ping(client: _Client) -> bool:
    return bool(await client.redis.ping())


def test_redis_resource_opens_only_on_a_redis_holding_the_data(
    redis_client: redis.Redis, embedded_redis_url: str
) -> None:
    urls = [embedded_redis_url]

    async def scenario() -> None:
        resource = _resource(urls, "mark")
        with pytest.raises(StageUnavailableError, match="thing unavailable: StageUnavailable"):
            await resource.get()  # Redis up, data not loaded
        assert resource.current is None and not await resource.ready()
        redis_client.set("mark", "1")
        assert await resource.ready()
        client = await resource.get()
        assert client.url == embedded_redis_url and resource.reconnects == 0
        assert await resource.probe(_ping) == (True, None)

    asyncio.run(scenario())


def test_redis_resource_reconnects_after_a_lost_dependency(
    redis_client: redis.Redis, embedded_redis_url: str
) -> None:
    redis_client.set("mark", "1")
    urls = [embedded_redis_url]

    async def scenario() -> None:
        resource = _resource(urls, "mark")
        first = await resource.get()
        with pytest.raises(StageUnavailableError, match="thing lost its dependency"):
            async with resource.use():
                raise redis.exceptions.ConnectionError("Connection reset by peer")
        assert first.closed and resource.current is None
        second = await resource.get()  # the URL is resolved again
        assert second is not first and resource.reconnects == 1
        await second.close()

    asyncio.run(scenario())


def test_check_health_strikes_only_when_a_fresh_connection_finds_the_data(
    redis_client: redis.Redis, embedded_redis_url: str
) -> None:
    redis_client.set("mark", "1")
    host, port = embedded_redis_url.rsplit("@", 1)[-1].split("/")[0].split(":")
    dead = embedded_redis_url.replace(f"{host}:{port}", f"{host}:1")  # nothing listens
    urls = [embedded_redis_url]

    async def broken(client: _Client) -> None:
        raise redis.exceptions.ConnectionError("this replica's pool is stuck")

    async def scenario() -> None:
        resource = _resource(urls, "mark")
        await resource.get()
        await resource.check_health(_ping)  # fine
        # The replica's own client fails while Redis and its data are fine: strikes, then
        # Serve replaces the replica (3 in a row).
        for _ in range(2):
            await resource.check_health(broken)
        assert resource.replica_health.failures == 2
        await resource.check_health(_ping)  # a good check resets the count
        assert resource.replica_health.failures == 0
        # Redis gone for everyone: a new replica would not help, no strikes.
        urls[0] = dead
        for _ in range(4):
            await resource.check_health(broken)
        assert resource.replica_health.failures == 0 and not await resource.ready()
        urls[0] = embedded_redis_url
        for _ in range(2):
            await resource.check_health(broken)
        with pytest.raises(RuntimeError, match="3 checks in a row"):
            await resource.check_health(broken)

    asyncio.run(scenario())


def test_a_fail_fast_client_gives_up_on_a_gone_redis_at_once() -> None:
    """A killed Redis (nothing listens on its port): the call fails in milliseconds, where
    redis-py's default retries sleep with backoff for seconds (a stage timeout)."""
    import socket
    import time

    import redis.asyncio

    from deployments.redis_resource import fail_fast

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
