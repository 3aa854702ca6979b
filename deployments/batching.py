"""Cross-request batching in a stage replica: the runtime knobs of `@serve.batch`.

A stage method decorated with `@serve.batch` collects the calls that reach the replica while
its previous batch runs, and answers them with one model call or one store read (Ranking:
one ranker call; Retrieval: one two-tower call; Features: one Feast read; Content: one Feast
read of the users' histories). With `batch_wait_timeout_s` 0 a call that arrives alone is not
delayed; under load a batch forms while the previous one runs. Both knobs are `user_config`
(`BatchingSettings`), applied by the deployment's `reconfigure` through `configure`.

`@serve.batch` keeps one queue per decorated method (not per instance), bound to the event
loop of its first call. A replica has one instance and one loop; in process (the monolith,
tests) a new instance may run on a new loop, so `configure` drops a queue whose loop is
closed and the next call builds one on the running loop.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol, cast

from deployments.config import BatchingSettings


class BatchControls(Protocol):
    """The setters and getters `@serve.batch` attaches to the method it wraps."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...

    def _get_max_batch_size(self) -> int: ...

    def _get_batch_wait_timeout_s(self) -> float: ...


def controls(batched_method: Any) -> BatchControls:
    """The batching knobs of a bound `@serve.batch` method."""
    return cast(BatchControls, batched_method)


def configure(batched_method: Any, settings: BatchingSettings) -> None:
    """Applies `settings` to a bound `@serve.batch` method (from the next batch on)."""
    knobs = controls(batched_method)
    _forget_closed_loop(knobs)
    knobs.set_max_batch_size(settings.max_batch_size)
    knobs.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)


def _forget_closed_loop(knobs: BatchControls) -> None:
    """Drops the method's batch queue if the event loop it was bound to is closed (Ray 2.60:
    `_LazyBatchQueueWrapper._queue`, `_BatchQueue._loop`)."""
    wrapper = getattr(knobs.set_max_batch_size, "__self__", None)
    queue = getattr(wrapper, "_queue", None)
    loop = getattr(queue, "_loop", None)
    if loop is not None and loop.is_closed():
        with contextlib.suppress(AttributeError):
            wrapper._queue = None  # type: ignore[union-attr]


def describe(batched_method: Any) -> dict[str, Any]:
    """The knobs in force, for `health()`."""
    knobs = controls(batched_method)
    return {
        "max_batch_size": knobs._get_max_batch_size(),
        "batch_wait_timeout_s": knobs._get_batch_wait_timeout_s(),
    }


__all__ = ["BatchControls", "configure", "controls", "describe"]
