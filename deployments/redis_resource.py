"""A replica's Redis client that reconnects: built lazily, dropped on a lost dependency.

Replicas start even when Redis or its data is missing (the stage reports itself unavailable
and the Controller serves a fallback) and reconnect by themselves after Redis restarts,
possibly on another port with another password (the URL is resolved again at every build).
Serve replaces a replica only when it alone cannot use a Redis that a fresh connection finds
with its data (`ReplicaHealth`).

* `LazyResource`: a resource built on first use, rebuilt after a failure.
* `RedisResource`: what the Features and Content stages share: a `LazyResource` on the
  current Redis URL whose build first checks that Redis holds the stage's data, its probe,
  and the `check_health` verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from deployments.common import StageUnavailableError, describe

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)


class ReplicaHealth:
    """When Serve should replace a replica (`check_health` raises): only when a new process
    could help.

    A dependency outage (Redis down, data not loaded, model not built) fails no health check:
    every replica would fail it, Serve would restart them in a loop, and the Controller
    already serves fallbacks. A replica that cannot use a dependency which answers a fresh
    connection, for `strikes` checks in a row, is broken itself: it is replaced.
    """

    def __init__(self, name: str, strikes: int = 3) -> None:
        self._name = name
        self._strikes = strikes
        self.failures = 0

    def record(self, usable: bool, dependency_ready: bool, detail: str = "") -> None:
        """Records one check.

        Args:
            usable: The replica's own resource answered.
            dependency_ready: The dependency answers a fresh connection (with its data).
            detail: Why the replica's resource failed (for the error).

        Raises:
            RuntimeError: The replica failed `strikes` checks in a row while the dependency
                was fine.
        """
        if usable or not dependency_ready:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self._strikes:
            raise RuntimeError(
                f"{self._name}: this replica cannot use a healthy dependency "
                f"({self.failures} checks in a row): {detail}"
            )


def lost_dependency(exc: BaseException) -> bool:
    """Whether `exc` means the connection to Redis (or its data) is gone, so a resource built
    on it must be rebuilt: connection refused or reset, wrong password after a restart, Redis
    still loading its snapshot, or a missing search index after a restart without data."""
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return True  # includes AuthenticationError and BusyLoadingError
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, redis.exceptions.ResponseError):
        text = str(exc).lower()
        return "no such index" in text or "index name" in text or "noauth" in text
    return False


def fail_fast(client: Any) -> Any:
    """Makes a redis-py client (sync or asyncio) retry a failed command at most once, at once.

    redis-py's default (3 retries, exponential backoff with jitter up to 10 s) keeps a call to
    a killed Redis sleeping for seconds: the stage then times out instead of failing, and
    `LazyResource` only rebuilds the client (on the restarted Redis's new port) once the
    retries are spent. One immediate retry still covers a stale pooled connection.

    Returns:
        The client.
    """
    client.set_retry(Retry(NoBackoff(), 1))
    return client


class LazyResource(Generic[T]):
    """A resource built on first use, rebuilt after a failure at most every `retry_s`.

    Replicas start even when Redis or an artifact is missing: the stage reports itself
    unavailable and the Controller serves a fallback, instead of Serve restarting the replica
    in a loop. Once the dependency appears, the next call after `retry_s` succeeds.

    A resource that loses its dependency (Redis restarted, possibly on another port with
    another password) is dropped by `use()` and rebuilt by a later call: the factory resolves
    the Redis URL again, so replicas reconnect without a restart.
    """

    def __init__(
        self,
        factory: Callable[[], Awaitable[T]],
        name: str,
        retry_s: float = 1.0,
        close: Callable[[T], Awaitable[None]] | None = None,
    ):
        self._factory = factory
        self._name = name
        self._retry_s = retry_s
        self._close = close
        self._value: T | None = None
        self._error: str | None = None
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()
        self.rebuilds = 0

    @property
    def ready(self) -> bool:
        """Whether the resource is built."""
        return self._value is not None

    @property
    def current(self) -> T | None:
        """The resource if it is built, else None (never builds it)."""
        return self._value

    @property
    def error(self) -> str | None:
        """Why the last build failed (or the resource was dropped), if it did."""
        return self._error

    async def get(self) -> T:
        """The resource, built if needed.

        Raises:
            StageUnavailableError: The build failed (now or less than `retry_s` ago).
        """
        if self._value is not None:
            return self._value
        async with self._lock:
            if self._value is not None:
                return self._value
            if time.monotonic() - self._failed_at < self._retry_s:
                raise StageUnavailableError(f"{self._name} unavailable: {self._error}")
            try:
                self._value = await self._factory()
            except Exception as exc:
                self._failed_at = time.monotonic()
                self._error = describe(exc)
                logger.warning("%s unavailable: %s", self._name, self._error)
                raise StageUnavailableError(f"{self._name} unavailable: {self._error}") from None
            self._error = None
            self.rebuilds += 1
            return self._value

    async def invalidate(self, value: T, reason: str) -> None:
        """Drops `value` (if it is still the current resource): the next `get()` rebuilds."""
        async with self._lock:
            if self._value is not value:
                return  # another call already dropped (or replaced) it
            self._value = None
            self._error = reason
            logger.warning("%s lost its dependency (%s); reconnecting", self._name, reason)
        if self._close is not None:
            with contextlib.suppress(Exception):
                await self._close(value)

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[T]:
        """The resource for one call; a lost dependency drops it and becomes unavailability.

        Raises:
            StageUnavailableError: The resource cannot be built, or the call lost the
                dependency (`lost_dependency`).
        """
        value = await self.get()
        try:
            yield value
        except Exception as exc:
            if not lost_dependency(exc):
                raise
            detail = describe(exc)
            await self.invalidate(value, detail)
            raise StageUnavailableError(f"{self._name} lost its dependency: {detail}") from None


DataCheck = Callable[[redis.asyncio.Redis], Awaitable[bool]]
"""Whether the Redis behind a (fresh, binary) client holds a stage's data; may raise."""


class RedisResource(Generic[T]):
    """A replica's client on the current Redis, rebuilt after Redis restarts.

    A build resolves the Redis URL again, checks on a fresh connection that Redis holds the
    stage's data (`has_data`; a Redis restarted without its data makes the stage unavailable
    instead of answering empty), then opens the client (`open`).

    Args:
        name: What the resource is, for errors and logs ("feature store").
        resolve_url: The Redis URL; called with `verify=False` for the readiness check.
        open: Opens the client on a Redis URL.
        has_data: The stage's data check (see `DataCheck`).
        missing: Why the stage is unavailable when `has_data` answers False.
        close: Closes a dropped client.
        retry_s: A failed build is retried at most this often.
    """

    def __init__(
        self,
        name: str,
        resolve_url: Callable[..., str],
        open: Callable[[str], Awaitable[T]],
        has_data: DataCheck,
        *,
        missing: str,
        close: Callable[[T], Awaitable[None]] | None = None,
        retry_s: float = 1.0,
    ) -> None:
        self.name = name
        self._resolve_url = resolve_url
        self._open = open
        self._has_data = has_data
        self._missing = missing
        self.resource: LazyResource[T] = LazyResource(self._build, name, retry_s, close)
        self.replica_health = ReplicaHealth(name)

    async def _build(self) -> T:
        url = await asyncio.to_thread(self._resolve_url)
        if not await self._data_at(url):
            raise StageUnavailableError(self._missing)
        return await self._open(url)

    async def _data_at(self, url: str) -> bool:
        client = fail_fast(
            redis.asyncio.Redis.from_url(
                url, decode_responses=False, socket_timeout=2.0, socket_connect_timeout=2.0
            )
        )
        try:
            return await self._has_data(client)
        finally:
            await client.aclose()

    @property
    def current(self) -> T | None:
        """The client if it is open, else None (never opens it)."""
        return self.resource.current

    @property
    def reconnects(self) -> int:
        """How many times the client was rebuilt after its first build."""
        return max(self.resource.rebuilds - 1, 0)

    async def get(self) -> T:
        """The client, opened if needed.

        Raises:
            StageUnavailableError: Redis, or its data, cannot be found (now or lately).
        """
        return await self.resource.get()

    def use(self) -> contextlib.AbstractAsyncContextManager[T]:
        """The client for one call; a lost dependency drops it (see `LazyResource.use`)."""
        return self.resource.use()

    async def probe(self, call: Callable[[T], Awaitable[R]]) -> tuple[R | None, str | None]:
        """(call's answer, None) when this replica's client answers `call`, else (None, why)."""
        try:
            async with self.use() as client:
                return await call(client), None
        except Exception as exc:
            return None, describe(exc)

    async def ready(self) -> bool:
        """Whether a fresh connection finds Redis up with the stage's data (never raises)."""
        try:
            url = await asyncio.to_thread(self._resolve_url, verify=False)
            return await self._data_at(url)
        except Exception:
            return False

    async def check_health(self, call: Callable[[T], Awaitable[object]]) -> None:
        """Serve's periodic check: probes with `call` (so an idle replica also reconnects
        after a Redis restart) and records the verdict.

        Raises:
            RuntimeError: This replica failed to use a Redis that a fresh connection finds
                with its data, several checks in a row (Serve then replaces it).
        """
        _, problem = await self.probe(call)
        ready = problem is None or await self.ready()
        self.replica_health.record(problem is None, ready, problem or "")
