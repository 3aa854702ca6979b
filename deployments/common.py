"""Helpers shared by the deployments: errors, health payloads, TensorFlow setup (the Redis
client that reconnects: `deployments.redis_resource`)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any, Literal

import redis
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from deployments.schemas import FallbackReason

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
    from models.tensorflow_env import configure_threads, tf

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
