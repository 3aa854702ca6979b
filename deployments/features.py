"""Features deployment: Feast online reads for one user and for a batch of candidates.

One `models.features.online.OnlineFeatures` (a long-lived FeatureStore, its registry and Redis
client) per replica. Movie features change only when the pipeline materializes, so the
replica keeps them in a TTL cache (`FeaturesSettings.movie_cache_ttl_s`): reading 100
candidates from Feast costs milliseconds, from the cache microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from ray import serve

from deployments.common import (
    LazyResource,
    ReplicaHealth,
    StageUnavailableError,
    describe,
    fail_fast,
    health_payload,
)
from deployments.config import FeaturesSettings, ServingContext
from deployments.faults import FaultInjector
from models.pipeline.layout import ArtifactLayout

logger = logging.getLogger(__name__)

LIKED = "liked_movie_ids"
SEEN = "seen_movie_ids"


class MovieFeatureCache:
    """Movie id -> (expiry, feature row), least recently used evicted first."""

    def __init__(self, ttl_s: float, max_size: int) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._rows: OrderedDict[int, tuple[float, dict[str, Any]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def resize(self, ttl_s: float, max_size: int) -> None:
        """Applies new limits; entries beyond them are dropped."""
        self.ttl_s, self.max_size = ttl_s, max_size
        if ttl_s <= 0 or max_size <= 0:
            self._rows.clear()
        while len(self._rows) > max(max_size, 0):
            self._rows.popitem(last=False)

    def get_many(
        self, ids: Sequence[int], now: float
    ) -> tuple[dict[int, dict[str, Any]], list[int]]:
        """The cached rows of `ids` and the ids to read (missing or expired), in order."""
        found: dict[int, dict[str, Any]] = {}
        missing: list[int] = []
        for movie_id in ids:
            entry = self._rows.get(movie_id)
            if entry is not None and entry[0] > now:
                found[movie_id] = entry[1]
                self._rows.move_to_end(movie_id)
            else:
                missing.append(movie_id)
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def put_many(self, rows: dict[int, dict[str, Any]], now: float) -> None:
        """Stores freshly read rows (no-op when the cache is disabled)."""
        if self.ttl_s <= 0 or self.max_size <= 0:
            return
        expiry = now + self.ttl_s
        for movie_id, row in rows.items():
            self._rows[movie_id] = (expiry, row)
            self._rows.move_to_end(movie_id)
        while len(self._rows) > self.max_size:
            self._rows.popitem(last=False)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.2},
    max_ongoing_requests=64,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
class Features:
    """Online features of users and candidate movies."""

    def __init__(self, context: ServingContext) -> None:
        """Opens the feature store lazily (a missing registry or Redis makes the stage
        unavailable, not the replica crash; the next call retries)."""
        self._context = context
        self._layout = context.layout
        self._registry = context.layout.features_dir / "registry.db"
        self._project = context.layout.feast_project
        self._settings = FeaturesSettings()
        self._cache = MovieFeatureCache(
            self._settings.movie_cache_ttl_s, self._settings.movie_cache_size
        )
        self._reader: LazyResource[Any] = LazyResource(self._open, "feature store")
        self._faults = FaultInjector("features")
        self._replica_health = ReplicaHealth("features")

    async def _open(self) -> Any:
        """A reader on the current Redis (the URL is resolved again at every (re)connect)."""
        from models.features.online import OnlineFeatures

        if not self._registry.exists():
            raise FileNotFoundError(f"no Feast registry at {self._registry}")
        url = self._context.resolve_redis_url()
        if not await _online_store_loaded(url, self._layout):
            raise StageUnavailableError(
                "the online store is empty (Redis restarted without its data?): run the loader"
            )
        reader = await asyncio.to_thread(OnlineFeatures.open, url, self._registry, self._project)
        # Feast's async Redis client, made now to fail fast (it is created on first use).
        online_store: Any = reader.store._get_provider().online_store
        fail_fast(await online_store._get_client_async(reader.store.config.online_store))
        # Warm-up: the first read builds Feast's serializers.
        await self._read_user(reader, 0)
        await reader.get_movie_features_async([0])
        return reader

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`FeaturesSettings`); at replica start it also opens
        the store (on the replica's event loop), so the first request is not slow."""
        settings = FeaturesSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        self._cache.resize(self._settings.movie_cache_ttl_s, self._settings.movie_cache_size)
        with contextlib.suppress(StageUnavailableError):  # unavailable: retried on the next call
            await self._reader.get()

    @staticmethod
    async def _read_user(reader: Any, user_id: int) -> dict[str, Any]:
        """User features and history in ONE Feast read (both views are keyed by user_id)."""
        from models.features.online import response_columns

        response = await reader.store.get_online_features_async(
            [*reader.user_refs, *reader.history_refs], {"user_id": [int(user_id)]}
        )
        columns = response_columns(response, ("user_id",))
        return {name: values[0] for name, values in columns.items()}

    async def user(self, user_id: int) -> dict[str, Any] | None:
        """The user's ranker features plus `liked_movie_ids` and `seen_movie_ids`.

        Returns:
            Feature name -> value (None where missing; the id lists are [] when missing);
            None for a user the store does not know (no feature row at all: cold start).

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost its data).
        """
        await self._faults.apply("user")
        async with self._reader.use() as reader:
            row = await self._read_user(reader, user_id)
        if all(v is None or v == [] for v in row.values()):
            return None
        row[LIKED] = list(row.get(LIKED) or [])
        row[SEEN] = list(row.get(SEEN) or [])
        return row

    async def movies(self, movie_ids: list[int]) -> dict[str, list[Any]]:
        """The candidates' ranker features, columnar, aligned with `movie_ids`.

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost its data).
        """
        await self._faults.apply("movies")
        ids = [int(i) for i in movie_ids[: self._settings.max_movies]]
        now = time.monotonic()
        found, missing = self._cache.get_many(ids, now)
        async with self._reader.use() as reader:
            if missing:
                columns = await reader.get_movie_features_async(missing)
                names = list(columns)
                fresh = {
                    movie_id: {name: columns[name][row] for name in names}
                    for row, movie_id in enumerate(missing)
                }
                self._cache.put_many(fresh, now)
                found.update(fresh)
            names = [ref.split(":", 1)[1] for ref in reader.movie_refs]
        return {name: [found[i].get(name) for i in ids] for name in names}

    async def _probe(self) -> str | None:
        """None when this replica reads a user from Redis, else why not."""
        try:
            async with self._reader.use() as reader:
                await self._read_user(reader, 0)
        except Exception as exc:
            return describe(exc)
        return None

    async def health(self) -> dict[str, Any]:
        """Stage health: the store is open and Redis answers a one-user read."""
        problem = await self._probe()
        if problem is not None:
            return health_payload("unavailable", registry=str(self._registry), error=problem)
        reader = self._reader.current
        return health_payload(
            "ok",
            project=reader.store.project if reader is not None else None,
            cached_movies=len(self._cache),
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            movie_cache_ttl_s=self._settings.movie_cache_ttl_s,
            reconnects=max(self._reader.rebuilds - 1, 0),
            faults=self._faults.describe(),
        )

    async def check_health(self) -> None:
        """Serve's periodic check: also reconnects after a Redis restart with no traffic.

        Raises:
            RuntimeError: This replica failed to read from a Redis that a fresh connection
                reads fine, several checks in a row (Serve then replaces it).
        """
        problem = await self._probe()
        ready = problem is None or await _online_store_ready(self._context, self._layout)
        self._replica_health.record(problem is None, ready, problem or "")

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()


async def _online_store_loaded(url: str, layout: ArtifactLayout) -> bool:
    """Whether the Redis at `url` holds this tree's materialized features (the loader's mark)."""
    client = fail_fast(
        redis.asyncio.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    )
    try:
        return bool(await client.exists(layout.features_version_key))
    finally:
        await client.aclose()


async def _online_store_ready(context: ServingContext, layout: ArtifactLayout) -> bool:
    """Whether a fresh connection finds Redis up with this tree's features (never raises)."""
    try:
        url = await asyncio.to_thread(context.resolve_redis_url, verify=False)
        return await _online_store_loaded(url, layout)
    except Exception:
        return False
