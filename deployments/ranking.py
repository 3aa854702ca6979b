"""Ranking deployment: the ranker SavedModel behind dynamic request batching.

A thin Serve wrapper around `models.ranking.runtime.Ranker`. Concurrent requests share one
model call: `@serve.batch` collects up to `max_batch_size` requests (waiting at most
`batch_wait_timeout_s`), their candidates are scored in one call and split back. Both knobs
are runtime settings (`user_config`, applied by `reconfigure` with `set_max_batch_size` /
`set_batch_wait_timeout_s`).

The stage reads its candidates' movie features itself: a near cache
(`models.features.cache.MovieFeatureCache`, filled at replica start with the most popular
movies), the misses of a whole batch read from the online store (Feast, Redis) in one read.

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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import pandas as pd
from ray import serve

from deployments.catalog import POPULARITY_FILE
from deployments.common import (
    StageUnavailableError,
    describe,
    health_payload,
    prepare_tensorflow,
    probe_model,
)
from deployments.config import RankingSettings, ServingContext
from deployments.faults import FaultInjector
from deployments.features import online_features
from deployments.model_slot import ModelSlot
from deployments.observability.backends import RayServeBackend
from deployments.observability.definitions import RANKING_BATCH_SIZE
from models.features.cache import MovieFeatureCache
from movierec.layout import ArtifactLayout
from movierec.payloads import RankQuery
from movierec.ranking_inputs import concat_inputs, split_scores

if TYPE_CHECKING:
    from models.features.runtime import OnlineFeatures
    from models.ranking.runtime import Ranker

logger = logging.getLogger(__name__)

PREFETCH_CHUNK = 500
"""Movies per online-store read while prefetching the popular movies."""

MovieRow = dict[str, Any]


class _BatchControls(Protocol):
    """The setters and getters `@serve.batch` attaches to the method it wraps."""

    def set_max_batch_size(self, new_max_batch_size: int) -> None: ...

    def set_batch_wait_timeout_s(self, new_batch_wait_timeout_s: float) -> None: ...

    def _get_max_batch_size(self) -> int: ...

    def _get_batch_wait_timeout_s(self) -> float: ...


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


@serve.deployment
class Ranking:
    """Scores candidates with the ranker SavedModel, batching concurrent requests
    (`deployments.stages.RankingStage`)."""

    def __init__(
        self, context: ServingContext, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> None:
        """Loads `ranking/saved_model` and `ranking/inputs.json`; a missing or invalid
        ranker leaves the stage unavailable (the Controller then orders by merged score).
        The online store is opened at the first `reconfigure` (on the replica's loop)."""
        self._layout = context.layout
        self._settings = RankingSettings()
        self._stats = BatchStats()
        self._threads = (intra_op_threads, inter_op_threads)
        self._batch_metric = RayServeBackend().histogram(RANKING_BATCH_SIZE)
        self._faults = FaultInjector("ranking")
        cache = self._settings.movie_cache
        self._movie_cache = MovieFeatureCache(cache.ttl_s, cache.size)
        self._store = online_features(context)  # the Features stage's runtime, reconnecting
        self._warm_up: asyncio.Task[None] | None = None
        prepare_tensorflow(intra_op_threads, inter_op_threads)
        self._model: ModelSlot[Ranker] = ModelSlot("ranker", context.artifacts, _load_ranker)
        self._model.load()

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`RankingSettings`): the batching knobs, the movie
        cache, faults, and a new `model_version`, which reloads the ranker from the
        artifacts tree in a thread while the current one keeps serving (a failed load keeps
        the current one). The first call also opens the online store and prefetches the
        popular movies' features, in the background."""
        settings = RankingSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        self._batching.set_max_batch_size(settings.max_batch_size)
        self._batching.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)
        cache = settings.movie_cache
        self._movie_cache.resize(cache.ttl_s, cache.size)
        if self._warm_up is None:
            prefetch = cache.prefetch if cache.ttl_s > 0 and cache.size > 0 else 0
            self._warm_up = asyncio.ensure_future(self._prefetch(min(prefetch, cache.size)))
        await self._model.set_version(settings.model_version)

    async def _prefetch(self, n: int) -> None:
        """Opens the store, then reads the `n` most popular movies into the cache in chunks;
        a failure only means later requests read them."""
        try:
            await self._store.get()
            ids = await asyncio.to_thread(_popular_ids, self._layout.catalog_dir, n)
            for start in range(0, len(ids), PREFETCH_CHUNK):
                await self._movie_rows(ids[start : start + PREFETCH_CHUNK])
        except Exception as exc:
            logger.warning("movie feature prefetch stopped: %s", describe(exc))
            return
        logger.info("prefetched the features of %d popular movies", len(ids))

    @property
    def _batching(self) -> _BatchControls:
        return cast(_BatchControls, self._rank_batch)

    async def rank(self, query: RankQuery) -> np.ndarray:
        """Scores one request's candidates, reading their movie features (cache, then the
        online store).

        Returns:
            [N] float32 scores aligned with `query.movie_ids`.

        Raises:
            StageUnavailableError: No ranker is loaded, or the movie features cannot be read.
            RankerSpecError: The query does not fit the ranker's inputs.
        """
        await self._faults.apply("rank")
        await self._model.get()
        if len(query) == 0:
            return np.zeros(0, dtype=np.float32)
        return await self._rank_batch(query)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.001)
    async def _rank_batch(self, queries: list[RankQuery]) -> list[np.ndarray]:
        from models.ranking.runtime import query_inputs

        ranker = self._model.current
        assert ranker is not None  # `rank` checked it; a reload only replaces it
        names = ranker.spec.movie_features
        rows: dict[int, MovieRow] = {}
        if names:  # one read for the whole batch's misses
            union = np.unique(np.concatenate([q.movie_ids for q in queries]))
            rows = await self._movie_rows(union.tolist())
        inputs = [
            query_inputs(ranker.spec, query, _columns(query.movie_ids, rows, names))
            for query in queries
        ]
        sizes = [len(query) for query in queries]
        merged = concat_inputs(inputs)
        started = time.perf_counter()
        scores = await asyncio.to_thread(ranker.score, merged)
        self._stats.record(len(queries), sum(sizes), time.perf_counter() - started)
        self._batch_metric.observe(len(queries))
        return split_scores(scores, sizes)

    async def _movie_rows(self, ids: list[int]) -> dict[int, MovieRow]:
        """Movie id -> its feature row: the cache's, the misses read in one Feast read.

        Raises:
            StageUnavailableError: The online store cannot be read.
        """
        now = time.monotonic()
        found, missing = self._movie_cache.get_many(ids, now)
        if not missing:
            return found
        try:
            await self._faults.apply("movie_features")
            async with self._store.use() as reader:
                columns = await reader.get_movie_features_async(missing)
        except StageUnavailableError:
            raise
        except Exception as exc:
            raise StageUnavailableError(f"movie features unavailable: {describe(exc)}") from None
        fresh = {
            movie_id: {name: values[row] for name, values in columns.items()}
            for row, movie_id in enumerate(missing)
        }
        self._movie_cache.put_many(fresh, now)
        found.update(fresh)
        return found

    def stats(self, reset: bool = False) -> dict[str, float]:
        """Batching statistics since the start (or the last reset)."""
        snapshot = self._stats.snapshot()
        if reset:
            self._stats.reset()
        return snapshot

    async def health(self) -> dict[str, Any]:
        """Stage health: the ranker, the batching statistics and the movie cache."""
        ranker = self._model.current if await self._model.ready() else None
        if ranker is None:
            return health_payload("unavailable", error=self._model.error)
        return health_payload(
            "ok",
            inputs=len(ranker.spec.inputs),
            **self._model.describe(),
            faults=self._faults.describe(),
            max_batch_size=self._batching._get_max_batch_size(),
            batch_wait_timeout_s=self._batching._get_batch_wait_timeout_s(),
            tf_threads=list(self._threads),
            batching=self._stats.snapshot(),
            cached_movies=len(self._movie_cache),
            cache_hits=self._movie_cache.hits,
            cache_misses=self._movie_cache.misses,
            movie_cache_ttl_s=self._settings.movie_cache.ttl_s,
            feature_store="open" if self._store.current is not None else "not open",
            reconnects=self._store.reconnects,
        )

    async def check_health(self) -> None:
        """Serve's periodic check: a loaded ranker must still score a two-movie block
        (`probe_model`: a broken one makes Serve replace the replica), and the online store
        is probed with a one-movie read (an idle replica also reconnects after a Redis
        restart; see `RedisResource.check_health`).

        Raises:
            RuntimeError: The ranker is broken, or this replica failed to read from a Redis
                that a fresh connection reads fine, several checks in a row.
        """
        ranker = self._model.current
        await probe_model("ranker", None if ranker is None else ranker.warm_up)
        await self._store.check_health(_one_movie_read)

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()


def _load_ranker(layout: ArtifactLayout) -> Ranker:
    """Loads and warms the ranker of `layout` (TensorFlow's threads are already set)."""
    from models.ranking.runtime import Ranker

    ranker = Ranker(layout.ranking_dir)
    ranker.warm_up()
    return ranker


def _columns(
    movie_ids: np.ndarray, rows: dict[int, MovieRow], names: list[str]
) -> dict[str, list[Any]]:
    """Movie feature name -> [N] values aligned with `movie_ids` (None where unknown)."""
    empty: MovieRow = {}
    ordered = [rows.get(m, empty) for m in movie_ids.tolist()]
    return {name: [row.get(name) for row in ordered] for name in names}


def _popular_ids(catalog_dir: Path, n: int) -> list[int]:
    """The `n` most popular movie ids (`catalog/popularity.parquet`; none without it)."""
    path = catalog_dir / POPULARITY_FILE
    if n <= 0 or not path.exists():
        return []
    frame = pd.read_parquet(path)
    if "rank" in frame.columns:
        frame = frame.sort_values("rank", kind="stable")
    ids: list[int] = frame["movie_id"].to_numpy(dtype=np.int64)[:n].tolist()
    return ids


async def _one_movie_read(reader: OnlineFeatures) -> None:
    """One Feast read of a movie: the online store's probe."""
    await reader.get_movie_features_async([0])
