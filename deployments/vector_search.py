"""VectorSearch deployment: Redis KNN over the MiniLM content embeddings.

Two queries, both through the async content client (`models.content.AsyncVectorSearchClient`,
one connection pool per replica) on the live index alias of the artifacts tree:

* `recommend(seeds, n, exclude)`: the `n` unseen movies nearest to the user's top-liked
  movies (the seeds), with their seed-aggregated cosine similarity;
* `similar(movie_id, k)`: a movie's `k` nearest neighbours (item-to-item).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any

from ray import serve

from deployments.common import (
    LazyResource,
    ReplicaHealth,
    StageUnavailableError,
    describe,
    fail_fast,
    health_payload,
)
from deployments.config import ServingContext, VectorSearchSettings
from deployments.faults import FaultInjector
from models.content import AsyncVectorSearchClient, MovieNotFoundError

logger = logging.getLogger(__name__)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=64,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
class VectorSearch:
    """Content-based candidates and item-to-item neighbours from the Redis HNSW index."""

    def __init__(self, context: ServingContext) -> None:
        """Connects lazily: a missing Redis or index makes the stage unavailable, not the
        replica crash (the next call retries)."""
        self._context = context
        self._alias = context.layout.vss_index_alias
        self._settings = VectorSearchSettings()
        self._client: LazyResource[AsyncVectorSearchClient] = LazyResource(
            self._connect, "vector search", close=_close
        )
        self._faults = FaultInjector("vector_search")
        self._replica_health = ReplicaHealth("vector_search")

    async def _connect(self) -> AsyncVectorSearchClient:
        """A client on the current Redis (the URL is resolved again at every (re)connect);
        the index must exist and be fully indexed (after a restart Redis re-indexes the
        snapshot's vectors in the background)."""
        url = self._context.resolve_redis_url()
        client = AsyncVectorSearchClient.from_url(
            url, self._alias, ef_runtime=self._settings.ef_runtime
        )
        fail_fast(client.client)
        try:
            info = await client.client.execute_command("FT.INFO", self._alias)
            indexed = _info_field(info, "percent_indexed")
            if indexed is not None and float(indexed) < 1.0:
                raise StageUnavailableError(f"index {self._alias} is still indexing ({indexed})")
        except Exception:
            await client.aclose()
            raise
        return client

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`VectorSearchSettings`); at replica start it also
        connects (on the replica's event loop), so the first request is not slow."""
        settings = VectorSearchSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        client = self._client.current
        if client is not None:
            client.ef_runtime = self._settings.ef_runtime  # read by every query
        with contextlib.suppress(StageUnavailableError):  # unavailable: retried on the next call
            await self._client.get()

    async def recommend(
        self,
        seeds: list[int],
        n: int,
        exclude: list[int],
        genres: list[str] | None = None,
        year_range: tuple[int | None, int | None] | None = None,
    ) -> list[tuple[int, float]]:
        """The `n` movies most similar to the seeds, none of them a seed or in `exclude`.

        Args:
            seeds: The user's top-liked movies.
            n: How many movies.
            exclude: Movies never to return (what the user has seen, the request excludes).
            genres: Keep only movies with one of these genres (filtered inside the KNN).
            year_range: Inclusive release-year bounds (filtered inside the KNN).

        Returns:
            (movie_id, similarity), best first; empty without seeds.

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost the index).
        """
        await self._faults.apply("recommend")
        if not seeds or n <= 0:
            return []
        async with self._client.use() as client:
            hits = await client.recommend_for_seeds(
                seeds,
                min(int(n), self._settings.max_k),
                exclude,
                aggregation=self._settings.aggregation,
                genres=genres or None,
                year_range=year_range,
            )
        return [(hit.movie_id, hit.score) for hit in hits]

    async def similar(self, movie_id: int, k: int) -> list[tuple[int, float]] | None:
        """A movie's `k` nearest neighbours (itself excluded); None if it is not indexed.

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost the index).
        """
        await self._faults.apply("similar")
        async with self._client.use() as client:
            try:
                hits = await client.similar_movies(
                    movie_id, min(int(k), self._settings.max_k), with_metadata=False
                )
            except MovieNotFoundError:
                return None
        return [(hit.movie_id, hit.score) for hit in hits]

    async def _probe(self) -> tuple[Any, str | None]:
        """(FT.INFO of the alias, None) when this replica reaches the index, else (None, why)."""
        try:
            async with self._client.use() as client:
                return await client.client.execute_command("FT.INFO", self._alias), None
        except Exception as exc:
            return None, describe(exc)

    async def health(self) -> dict[str, Any]:
        """Stage health: Redis answers and the index alias exists."""
        info, problem = await self._probe()
        if problem is not None:
            return health_payload("unavailable", alias=self._alias, error=problem)
        num_docs = _info_field(info, "num_docs")
        return health_payload(
            "ok",
            alias=self._alias,
            num_docs=int(num_docs) if num_docs is not None else None,
            aggregation=self._settings.aggregation,
            reconnects=max(self._client.rebuilds - 1, 0),
            faults=self._faults.describe(),
        )

    async def check_health(self) -> None:
        """Serve's periodic check: also reconnects after a Redis restart with no traffic.

        Raises:
            RuntimeError: This replica failed to query an index that a fresh connection
                finds, several checks in a row (Serve then replaces it).
        """
        _, problem = await self._probe()
        ready = problem is None or await self._index_ready()
        self._replica_health.record(problem is None, ready, problem or "")

    async def _index_ready(self) -> bool:
        """Whether a fresh connection finds the index alias (never raises)."""
        try:
            url = await asyncio.to_thread(self._context.resolve_redis_url, verify=False)
            client = AsyncVectorSearchClient.from_url(url, self._alias)
            fail_fast(client.client)
            try:
                await client.client.execute_command("FT.INFO", self._alias)
            finally:
                await client.aclose()
        except Exception:
            return False
        return True

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()


def _info_field(info: Any, name: str) -> Any:
    """A field of an FT.INFO reply (RESP2 flat list or RESP3 map)."""
    if isinstance(info, dict):
        return info.get(name, info.get(name.encode()))
    pairs = zip(info[::2], info[1::2], strict=False)
    for key, value in pairs:
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else value
    return None


async def _close(client: AsyncVectorSearchClient) -> None:
    await client.aclose()
