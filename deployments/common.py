"""Helpers shared by the deployments: health payloads, TensorFlow setup, lazy resources."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")
Status = Literal["ok", "degraded", "unavailable"]

logger = logging.getLogger(__name__)


class StageUnavailableError(RuntimeError):
    """A stage cannot answer yet (artifact missing, Redis down); retried later."""


def public_reason(exc: BaseException) -> str:
    """What a client may see of a stage failure: a category, never paths or messages."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, StageUnavailableError):
        return "unavailable"
    return f"error ({type(exc).__name__})"


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


class LazyResource(Generic[T]):
    """A resource built on first use, rebuilt after a failure at most every `retry_s`.

    Replicas start even when Redis or an artifact is missing: the stage reports itself
    unavailable and the Controller serves a fallback, instead of Serve restarting the replica
    in a loop. Once the dependency appears, the next call after `retry_s` succeeds.
    """

    def __init__(self, factory: Callable[[], Awaitable[T]], name: str, retry_s: float = 5.0):
        self._factory = factory
        self._name = name
        self._retry_s = retry_s
        self._value: T | None = None
        self._error: str | None = None
        self._failed_at = float("-inf")
        self._lock = asyncio.Lock()

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
        """Why the last build failed, if it did."""
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
            return self._value
