"""Ranking deployment: the ranker SavedModel behind dynamic request batching.

Concurrent requests share one model call: `@serve.batch` collects up to `max_batch_size`
requests (waiting at most `batch_wait_timeout_s`), their candidate blocks are concatenated,
scored in one call and split back. Both knobs are runtime settings (`user_config`, applied by
`reconfigure` with `set_max_batch_size` / `set_batch_wait_timeout_s`).

The model is generic: the input tensors are built from `ranking/inputs.json` (see
`movierec.ranking_inputs`), so a new ranker with other features needs no code change.
Batch sizes are recorded (`stats()`, and the `movierec_ranking_batch_size` metric).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from typing import Any, Protocol, cast

import numpy as np
from ray import serve

from deployments.common import (
    StageUnavailableError,
    describe,
    health_payload,
    prepare_tensorflow,
    probe_model,
)
from deployments.config import RankingSettings, ServingContext
from deployments.faults import FaultInjector
from deployments.observability.backends import RayServeBackend
from deployments.observability.definitions import RANKING_BATCH_SIZE
from movierec.ranking_inputs import (
    INPUTS_FILE,
    SAVED_MODEL_DIR,
    RankBlock,
    RankerSpec,
    RankerSpecError,
    build_inputs,
    concat_inputs,
    split_scores,
)

logger = logging.getLogger(__name__)

RELOAD_RETRY_S = 30.0
"""A ranker that failed to load (e.g. not built yet) is retried at most this often."""

_WARM_UP = RankBlock(user_id=0, user={}, movie_ids=[1, 2], movies={}, candidates={})
"""A two-movie block of default features: the load warm-up and the health probe."""

_TF_DTYPES = {
    "float32": "float32",
    "float64": "float64",
    "int32": "int32",
    "int64": "int64",
    "bool": "bool",
    "string": "string",
}


class _BatchControls(Protocol):
    """The setters and getters `@serve.batch` attaches to the method it wraps."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...

    def _get_max_batch_size(self) -> int: ...

    def _get_batch_wait_timeout_s(self) -> float: ...


class LoadedRanker:
    """A ranker SavedModel and its input spec, checked against each other at load."""

    def __init__(self, ranking_dir: Any, tf: Any) -> None:
        self.spec = RankerSpec.load(ranking_dir / INPUTS_FILE)
        self._tf = tf
        loaded = tf.saved_model.load(str(ranking_dir / SAVED_MODEL_DIR))
        if self.spec.signature not in loaded.signatures:
            raise RankerSpecError(
                f"SavedModel has no signature {self.spec.signature!r}: {sorted(loaded.signatures)}"
            )
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[self.spec.signature]
        _, expected = self._fn.structured_input_signature
        missing = sorted({i.name for i in self.spec.inputs} - set(expected))
        extra = sorted(set(expected) - {i.name for i in self.spec.inputs})
        if missing or extra:
            raise RankerSpecError(
                f"inputs.json and the signature disagree: not in the signature {missing}, "
                f"not in inputs.json {extra}"
            )
        for spec_input in self.spec.inputs:
            tensor_spec = expected[spec_input.name]
            if tensor_spec.dtype.name != _TF_DTYPES[spec_input.dtype]:
                raise RankerSpecError(
                    f"input {spec_input.name!r}: inputs.json says {spec_input.dtype}, "
                    f"the signature {tensor_spec.dtype.name}"
                )
        self._dtypes = {name: spec.dtype for name, spec in expected.items()}

    def score(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Scores N candidates: [N] float32."""
        tf = self._tf
        tensors = {
            name: tf.constant(value, dtype=self._dtypes[name]) for name, value in inputs.items()
        }
        out = self._fn(**tensors)
        if self.spec.output not in out:
            raise RankerSpecError(f"signature output has no {self.spec.output!r}: {list(out)}")
        return np.asarray(out[self.spec.output].numpy(), dtype=np.float32).reshape(-1)


class BatchStats:
    """Counts of the model calls and how many requests and rows each one served."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forgets everything recorded so far."""
        with self._lock:
            self.calls = 0
            self.requests = 0
            self.rows = 0
            self.max_requests = 0
            self.model_seconds = 0.0

    def record(self, requests: int, rows: int, seconds: float) -> None:
        """Records one model call."""
        with self._lock:
            self.calls += 1
            self.requests += requests
            self.rows += rows
            self.max_requests = max(self.max_requests, requests)
            self.model_seconds += seconds

    def snapshot(self) -> dict[str, float]:
        """calls, requests, rows, mean/max requests per call, mean model milliseconds."""
        with self._lock:
            calls = max(self.calls, 1)
            return {
                "calls": self.calls,
                "requests": self.requests,
                "rows": self.rows,
                "mean_batch_size": self.requests / calls if self.calls else 0.0,
                "max_batch_size": self.max_requests,
                "mean_rows_per_call": self.rows / calls if self.calls else 0.0,
                "mean_model_ms": 1000.0 * self.model_seconds / calls if self.calls else 0.0,
            }


@serve.deployment(
    ray_actor_options={"num_cpus": 0.25},
    max_ongoing_requests=32,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
class Ranking:
    """Scores candidate blocks with the ranker SavedModel, batching concurrent requests."""

    def __init__(
        self, context: ServingContext, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> None:
        """Loads `ranking/saved_model` and `ranking/inputs.json`; a missing or invalid
        ranker leaves the stage unavailable (the Controller then orders by merged score)."""
        self._ranker: LoadedRanker | None = None
        self._error: str | None = None
        self._settings = RankingSettings()
        self._stats = BatchStats()
        self._threads = (intra_op_threads, inter_op_threads)
        self._batch_metric = RayServeBackend().histogram(RANKING_BATCH_SIZE)
        self._ranking_dir = context.layout.ranking_dir
        self._tree = context.layout.root
        self._artifacts = ""
        self._model_version: str | None = None  # the user_config label last applied
        self._faults = FaultInjector("ranking")
        self._failed_at = float("-inf")
        self._load_lock = threading.Lock()
        self._tf = prepare_tensorflow(intra_op_threads, inter_op_threads)
        self._load()

    def _load(self) -> None:
        """Loads and warms the ranker (a failure leaves the stage unavailable; retried)."""
        try:
            ranker = LoadedRanker(self._ranking_dir, self._tf)
            ranker.score(build_inputs(ranker.spec, _WARM_UP))
        except Exception as exc:
            self._error = describe(exc)
            self._failed_at = time.monotonic()
            logger.error("ranker not loaded from %s: %s", self._ranking_dir, exc)
            return
        # One assignment: a batch in flight keeps the ranker it started with.
        self._ranker, self._error = ranker, None
        self._artifacts = self._tree.resolve().name
        logger.info("ranker loaded from %s", self._artifacts)

    def _ensure_loaded(self) -> bool:
        """Whether the ranker is loaded; retries a failed load every `RELOAD_RETRY_S`."""
        if self._ranker is not None:
            return True
        with self._load_lock:
            if self._ranker is None and time.monotonic() - self._failed_at > RELOAD_RETRY_S:
                self._load()
        return self._ranker is not None

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`RankingSettings`): the batching knobs, faults, and a
        new `model_version`, which reloads the ranker from the artifacts tree in a thread
        while the current one keeps serving (a failed load keeps the current one)."""
        settings = RankingSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        self._batching.set_max_batch_size(self._settings.max_batch_size)
        self._batching.set_batch_wait_timeout_s(self._settings.batch_wait_timeout_s)
        previous, self._model_version = self._model_version, settings.model_version
        if previous is not None and previous != settings.model_version:
            logger.info("model_version %r -> %r: reloading", previous, settings.model_version)
            await asyncio.to_thread(self._load)

    @property
    def _batching(self) -> _BatchControls:
        return cast(_BatchControls, self._rank_batch)

    async def rank(self, block: RankBlock) -> np.ndarray:
        """Scores one request's candidates: [N] float32, aligned with `block.movie_ids`.

        Raises:
            StageUnavailableError: No ranker is loaded.
            RankerSpecError: The block does not fit the ranker's inputs.
        """
        await self._faults.apply("rank")
        if self._ranker is None and not await asyncio.to_thread(self._ensure_loaded):
            raise StageUnavailableError(f"ranker unavailable: {self._error}")
        if len(block) == 0:
            return np.zeros(0, dtype=np.float32)
        return await self._rank_batch(block)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.001)
    async def _rank_batch(self, blocks: list[RankBlock]) -> list[np.ndarray]:
        ranker = self._ranker
        assert ranker is not None
        inputs = [build_inputs(ranker.spec, block) for block in blocks]
        sizes = [len(block) for block in blocks]
        merged = concat_inputs(inputs)
        started = time.perf_counter()
        scores = await asyncio.to_thread(ranker.score, merged)
        self._stats.record(len(blocks), sum(sizes), time.perf_counter() - started)
        self._batch_metric.observe(len(blocks))
        return split_scores(scores, sizes)

    def stats(self, reset: bool = False) -> dict[str, float]:
        """Batching statistics since the start (or the last reset)."""
        snapshot = self._stats.snapshot()
        if reset:
            self._stats.reset()
        return snapshot

    def health(self) -> dict[str, Any]:
        """Stage health and the batching statistics."""
        if not self._ensure_loaded() or self._ranker is None:
            return health_payload("unavailable", error=self._error)
        return health_payload(
            "ok",
            inputs=len(self._ranker.spec.inputs),
            model_version=self._model_version,
            artifacts=self._artifacts,
            faults=self._faults.describe(),
            max_batch_size=self._batching._get_max_batch_size(),
            batch_wait_timeout_s=self._batching._get_batch_wait_timeout_s(),
            tf_threads=list(self._threads),
            batching=self._stats.snapshot(),
        )

    async def check_health(self) -> None:
        """Serve's periodic check: a loaded ranker must still score a two-movie block
        (`probe_model`: a broken one makes Serve replace the replica)."""
        ranker = self._ranker
        await probe_model(
            "ranker",
            None if ranker is None else lambda: ranker.score(build_inputs(ranker.spec, _WARM_UP)),
        )

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()
