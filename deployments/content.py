"""Content deployment: Redis KNN over the MiniLM content embeddings, `ContentStage`.

A thin wrapper around the content runtime (`models.content.runtime.ContentRuntime`, plans
run on one `AsyncRedisTransport` per replica) on the live index alias of the artifacts tree:

* `candidates(user_id, n, allowed)`: reads the user's liked and seen movies itself (the
  features runtime, one Feast read), so the Controller asks it in parallel with Retrieval
  and Features; the `n` unseen movies nearest to the top `n_seeds` liked movies;
* `similar(movie_id, k)`: a movie's `k` nearest neighbours (item-to-item).

Both Redis clients (the index's and the feature store's) reconnect after Redis restarts
(`RedisResource`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import redis.asyncio
from ray import serve

from deployments.common import StageUnavailableError, health_payload
from deployments.config import ContentSettings, ServingContext
from deployments.faults import FaultInjector
from deployments.features import online_features
from deployments.redis_resource import RedisResource, fail_fast
from models.content.client import AsyncRedisTransport, VectorSearch
from models.content.runtime import ContentRuntime
from movierec.payloads import CandidateFilter, ScoredMovies

if TYPE_CHECKING:
    from models.features.runtime import OnlineFeatures

logger = logging.getLogger(__name__)


@serve.deployment
class Content:
    """Content-based candidates and item-to-item neighbours (implements `ContentStage`)."""

    def __init__(self, context: ServingContext) -> None:
        """Connects lazily: a missing Redis, index or feature store makes the stage
        unavailable, not the replica crash (the next call retries)."""
        self._alias = context.layout.content_index_alias
        self._settings = ContentSettings()
        self._runtime = self._runtime_for(self._settings)
        self._index: RedisResource[AsyncRedisTransport] = RedisResource(
            "vector search",
            context.resolve_redis_url,
            _connect,
            self._indexed,
            missing=f"index {self._alias} is still indexing",
            close=_close,
        )
        self._history = online_features(context)
        self._faults = FaultInjector("content")

    def _runtime_for(self, settings: ContentSettings) -> ContentRuntime:
        search = VectorSearch(self._alias, ef_runtime=settings.ef_runtime)
        return ContentRuntime(search, settings.aggregation, settings.max_k)

    async def _indexed(self, client: redis.asyncio.Redis) -> bool:
        """Whether the index alias exists and is fully indexed (after a restart Redis
        re-indexes the snapshot's vectors in the background).

        Raises:
            redis.exceptions.ResponseError: No such index.
        """
        indexed = _info_field(await self._info(client), "percent_indexed")
        return indexed is None or float(indexed) >= 1.0

    async def _info(self, client: redis.asyncio.Redis) -> Any:
        return await client.execute_command("FT.INFO", self._alias)

    async def _index_info(self, transport: AsyncRedisTransport) -> Any:
        return await self._info(transport.client)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`ContentSettings`); at replica start it also
        connects (on the replica's event loop), so the first request is not slow."""
        settings = ContentSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        self._runtime = self._runtime_for(settings)  # read by every query
        for resource in (self._index, self._history):
            with contextlib.suppress(StageUnavailableError):  # retried on the next call
                await resource.get()

    async def candidates(self, user_id: int, n: int, allowed: CandidateFilter) -> ScoredMovies:
        """Up to `n` unseen movies nearest to the user's top `n_seeds` liked movies.

        Args:
            user_id: The user; their liked and seen movies are read from the online store.
            n: How many movies (at most `max_k`).
            allowed: The request's exclusions and genre/year filters (applied in the KNN).

        Returns:
            [<= n] movies, best first, scored by seed-aggregated cosine similarity; none of
            them seen, a seed or excluded. Empty for a user without likes (or unknown).

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost the index or features).
        """
        await self._faults.apply("candidates")
        if n <= 0:
            return ScoredMovies.empty()
        async with self._history.use() as reader:
            liked, seen = await reader.user_history_async(user_id)
        if not liked:
            return ScoredMovies.empty()
        plan = self._runtime.candidates(liked, seen, n, allowed, n_seeds=self._settings.n_seeds)
        async with self._index.use() as transport:
            return await transport.run(plan)

    async def similar(self, movie_id: int, k: int) -> ScoredMovies | None:
        """A movie's `k` nearest neighbours (itself excluded); None if it is not indexed.

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost the index).
        """
        await self._faults.apply("similar")
        async with self._index.use() as transport:
            return await transport.run(self._runtime.similar(movie_id, k))

    async def health(self) -> dict[str, Any]:
        """Stage health: Redis answers, the index alias exists, the feature store reads."""
        info, problem = await self._index.probe(self._index_info)
        if problem is None:
            _, problem = await self._history.probe(_one_history_read)
        if problem is not None:
            return health_payload("unavailable", alias=self._alias, error=problem)
        num_docs = _info_field(info, "num_docs")
        return health_payload(
            "ok",
            alias=self._alias,
            num_docs=int(num_docs) if num_docs is not None else None,
            n_seeds=self._settings.n_seeds,
            aggregation=self._settings.aggregation,
            reconnects=self._index.reconnects + self._history.reconnects,
            faults=self._faults.describe(),
        )

    async def check_health(self) -> None:
        """Serve's periodic check: also reconnects after a Redis restart with no traffic.

        Raises:
            RuntimeError: This replica failed to query an index (or feature store) that a
                fresh connection finds, several checks in a row (Serve then replaces it).
        """
        await self._index.check_health(self._index_info)
        await self._history.check_health(_one_history_read)

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()


async def _connect(url: str) -> AsyncRedisTransport:
    transport = AsyncRedisTransport.from_url(url)
    fail_fast(transport.client)
    return transport


async def _close(transport: AsyncRedisTransport) -> None:
    await transport.aclose()


async def _one_history_read(reader: OnlineFeatures) -> None:
    """One Feast read of a user's history: the probe of the feature store."""
    await reader.user_history_async(0)


def _info_field(info: Any, name: str) -> Any:
    """A field of an FT.INFO reply (RESP2 flat list or RESP3 map)."""
    if isinstance(info, dict):
        return info.get(name, info.get(name.encode()))
    pairs = zip(info[::2], info[1::2], strict=False)
    for key, value in pairs:
        if (key.decode() if isinstance(key, bytes) else key) == name:
            return value.decode() if isinstance(value, bytes) else value
    return None
