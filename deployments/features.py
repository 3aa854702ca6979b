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

from ray import serve

from deployments.common import LazyResource, StageUnavailableError, describe, health_payload
from deployments.config import FeaturesSettings, ServingContext

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
        self._registry = context.layout.features_dir / "registry.db"
        self._project = context.layout.feast_project
        self._settings = FeaturesSettings()
        self._cache = MovieFeatureCache(
            self._settings.movie_cache_ttl_s, self._settings.movie_cache_size
        )
        self._reader: LazyResource[Any] = LazyResource(self._open, "feature store")

    async def _open(self) -> Any:
        from models.features.online import OnlineFeatures

        if not self._registry.exists():
            raise FileNotFoundError(f"no Feast registry at {self._registry}")
        url = self._context.resolve_redis_url()
        reader = await asyncio.to_thread(OnlineFeatures.shared, url, self._registry, self._project)
        # Warm-up: the first read builds Feast's serializers and the async Redis client.
        await self._read_user(reader, 0)
        await reader.get_movie_features_async([0])
        return reader

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`FeaturesSettings`); at replica start it also opens
        the store (on the replica's event loop), so the first request is not slow."""
        self._settings = FeaturesSettings.model_validate(config or {})
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
        """
        reader = await self._reader.get()
        row = await self._read_user(reader, user_id)
        if all(v is None or v == [] for v in row.values()):
            return None
        row[LIKED] = list(row.get(LIKED) or [])
        row[SEEN] = list(row.get(SEEN) or [])
        return row

    async def movies(self, movie_ids: list[int]) -> dict[str, list[Any]]:
        """The candidates' ranker features, columnar, aligned with `movie_ids`."""
        reader = await self._reader.get()
        ids = [int(i) for i in movie_ids[: self._settings.max_movies]]
        now = time.monotonic()
        found, missing = self._cache.get_many(ids, now)
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

    async def health(self) -> dict[str, Any]:
        """Stage health: the store is open and Redis answers a one-user read."""
        try:
            reader = await self._reader.get()
            await self._read_user(reader, 0)
        except Exception as exc:
            return health_payload("unavailable", registry=str(self._registry), error=describe(exc))
        return health_payload(
            "ok",
            project=reader.store.project,
            cached_movies=len(self._cache),
            cache_hits=self._cache.hits,
            cache_misses=self._cache.misses,
            movie_cache_ttl_s=self._settings.movie_cache_ttl_s,
        )

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()
