"""Helpers shared by the deployments: health payloads, TensorFlow setup, lazy resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

import redis
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from redis.backoff import NoBackoff
from redis.retry import Retry

from deployments.schemas import FallbackReason

T = TypeVar("T")
Status = Literal["ok", "degraded", "unavailable"]

logger = logging.getLogger(__name__)


class StageUnavailableError(RuntimeError):
    """A stage cannot answer yet (artifact missing, Redis down); retried later."""


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    StageUnavailableError,
    RayActorError,  # the replica died (ActorDiedError) or cannot be reached
    DeploymentUnavailableError,
    redis.exceptions.ConnectionError,  # also AuthenticationError, BusyLoadingError
    ConnectionError,
)


def public_reason(exc: BaseException) -> FallbackReason:
    """What a client may see of a stage failure: a category, never paths or messages."""
    if isinstance(exc, TimeoutError | redis.exceptions.TimeoutError):
        return "timeout"
    if isinstance(exc, BackPressureError):
        return "overloaded"
    if isinstance(exc, _UNAVAILABLE):
        return "unavailable"
    return "error"


def health_payload(status: Status, **detail: Any) -> dict[str, Any]:
    """What every deployment's `health()` returns: status, the replica's pid, details."""
    return {"status": status, "pid": os.getpid(), "detail": detail}


def prepare_tensorflow(intra_op_threads: int, inter_op_threads: int) -> Any:
    """Imports TensorFlow with Keras 2 and sets its CPU thread pools; returns `tf`.

    Must run before TensorFlow executes its first op in the process. Replicas get a
    fraction of a CPU, so the pools are set explicitly instead of to the core count.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from models.retrieval._tf import configure_threads, tf

    configure_threads(intra_op_threads, inter_op_threads)
    return tf


def describe(exc: BaseException) -> str:
    """A short, secret-free description of an exception for responses and health."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc).splitlines()[0] if str(exc) else ""
    # Never echo a Redis URL: it would carry the password.
    if "redis://" in text or "rediss://" in text:
        text = "connection error"
    name = type(exc).__name__
    return f"{name}: {text[:200]}" if text else name


async def probe_model(name: str, probe: Callable[[], object] | None) -> None:
    """The `check_health()` of a model stage: a loaded model must still answer `probe`.

    A model that is not loaded (`probe` None: not built yet) fails no check: a new replica
    would not load it either; the stage reports itself unavailable and retries the load.

    Raises:
        RuntimeError: The loaded model failed the probe (Serve then replaces the replica).
    """
    if probe is None:
        return
    try:
        await asyncio.to_thread(probe)
    except Exception as exc:
        raise RuntimeError(f"{name} broken: {describe(exc)}") from None


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
