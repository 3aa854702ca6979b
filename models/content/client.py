"""Vector search clients: sync (`redis.Redis`) and asyncio (`redis.asyncio.Redis`).

Both execute the same I/O-free plans of `models.content.query` (so the query logic exists
once) and differ only in how a batch of commands reaches Redis: one command directly, several
as one non-transactional pipeline. Create a client once and reuse it; it holds the Redis
connection pool open.

* `VectorSearchClient`: offline evaluation and scripts; `run_many`/`recommend_many` advance
  many requests in lockstep, so a batch of users costs two pipelined round trips in total.
* `AsyncVectorSearchClient`: the online Content deployment (Ray Serve, asyncio).

Clients must use ``decode_responses=False`` (vectors are binary); RESP2 and RESP3 both work.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

import numpy as np
import redis
import redis.asyncio

from models.content.query import (
    DEFAULT_ALIAS,
    EXCLUSION_FILTER_ABOVE,
    Aggregation,
    Command,
    Plan,
    ScoredMovie,
    SearchFilter,
    T,
    YearRange,
    fetch_vectors_plan,
    knn_plan,
    recommend_for_seeds_plan,
    similar_movies_plan,
)


class _Requests:
    """Builds the plans of the public methods; shared by the sync and async drivers."""

    alias: str
    ef_runtime: int | None
    exclusion_filter_above: int

    def _similar(
        self,
        movie_id: int,
        k: int,
        genres: Iterable[str] | None,
        year_range: YearRange | None,
        with_metadata: bool,
    ) -> Plan[list[ScoredMovie]]:
        return similar_movies_plan(
            self.alias,
            int(movie_id),
            k,
            search_filter=SearchFilter.of(genres, year_range),
            ef_runtime=self.ef_runtime,
            with_metadata=with_metadata,
        )

    def _recommend(
        self,
        seed_movie_ids: Sequence[int],
        k: int,
        exclude_ids: Collection[int],
        seed_weights: Sequence[float] | None,
        aggregation: Aggregation,
        genres: Iterable[str] | None,
        year_range: YearRange | None,
        with_metadata: bool,
    ) -> Plan[list[ScoredMovie]]:
        return recommend_for_seeds_plan(
            self.alias,
            seed_movie_ids,
            k,
            exclude_ids=exclude_ids,
            seed_weights=seed_weights,
            aggregation=aggregation,
            search_filter=SearchFilter.of(genres, year_range),
            ef_runtime=self.ef_runtime,
            with_metadata=with_metadata,
            exclusion_filter_above=self.exclusion_filter_above,
        )

    def _knn(
        self,
        vector: np.ndarray,
        k: int,
        exclude_ids: Collection[int],
        genres: Iterable[str] | None,
        year_range: YearRange | None,
        with_metadata: bool,
    ) -> Plan[list[ScoredMovie]]:
        return knn_plan(
            self.alias,
            vector,
            k,
            exclude_ids=exclude_ids,
            search_filter=SearchFilter.of(genres, year_range),
            ef_runtime=self.ef_runtime,
            with_metadata=with_metadata,
            exclusion_filter_above=self.exclusion_filter_above,
        )


def _check_client(client: Any) -> None:
    kwargs = client.get_connection_kwargs()
    if kwargs.get("decode_responses"):
        raise ValueError("the Redis client must use decode_responses=False (vectors are binary)")


def _drive_sync(
    plans: Sequence[Plan[Any]], execute: Callable[[list[Command]], list[Any]]
) -> list[Any]:
    """Runs plans in lockstep: each step sends every pending command in one batch."""
    results: list[Any] = [None] * len(plans)
    pending: dict[int, list[Command]] = {}
    for i in range(len(plans)):
        _advance(plans, i, None, pending, results)
    while pending:
        order = list(pending)
        batch = [cmd for i in order for cmd in pending[i]]
        replies = execute(batch)
        start = 0
        for i in order:
            n = len(pending.pop(i))
            _advance(plans, i, replies[start : start + n], pending, results)
            start += n
    return results


def _advance(
    plans: Sequence[Plan[Any]],
    i: int,
    replies: list[Any] | None,
    pending: dict[int, list[Command]],
    results: list[Any],
) -> None:
    try:
        commands = next(plans[i]) if replies is None else plans[i].send(replies)
        while not commands:  # a step with nothing to send
            commands = plans[i].send([])
        pending[i] = commands
    except StopIteration as stop:
        results[i] = stop.value


class VectorSearchClient(_Requests):
    """Synchronous vector search over the movie index, for offline evaluation and scripts.

    Create once and reuse; the wrapped `redis.Redis` keeps its connections open.

    Args:
        client: Redis connection with ``decode_responses=False``.
        alias: Index alias (or name) to query.
        ef_runtime: HNSW EF_RUNTIME per query; None keeps the index default.
        exclusion_filter_above: Exclusion sets larger than this are filtered inside the KNN
            instead of over-fetched (0: always filter).
        max_pipeline: Commands per pipeline round trip in batched calls.
    """

    def __init__(
        self,
        client: redis.Redis,
        alias: str = DEFAULT_ALIAS,
        *,
        ef_runtime: int | None = None,
        exclusion_filter_above: int = EXCLUSION_FILTER_ABOVE,
        max_pipeline: int = 512,
    ) -> None:
        _check_client(client)
        self.client = client
        self.alias = alias
        self.ef_runtime = ef_runtime
        self.exclusion_filter_above = exclusion_filter_above
        self.max_pipeline = max_pipeline

    @classmethod
    def from_url(cls, url: str, alias: str = DEFAULT_ALIAS, **kwargs: Any) -> VectorSearchClient:
        """Connects to a Redis URL (e.g. "redis://:password@127.0.0.1:6400/0")."""
        return cls(redis.Redis.from_url(url, decode_responses=False), alias, **kwargs)

    def close(self) -> None:
        """Closes the underlying connections."""
        self.client.close()

    def run(self, plan: Plan[T]) -> T:
        """Executes one plan, one pipeline round trip per step."""
        return self.run_many([plan])[0]

    def run_many(self, plans: Sequence[Plan[T]]) -> list[T]:
        """Executes plans in lockstep, batching their commands into shared pipelines."""
        return _drive_sync(plans, self._execute)

    def _execute(self, commands: list[Command]) -> list[Any]:
        if len(commands) == 1:
            return [self.client.execute_command(*commands[0])]
        replies: list[Any] = []
        for start in range(0, len(commands), self.max_pipeline):
            pipe = self.client.pipeline(transaction=False)
            for command in commands[start : start + self.max_pipeline]:
                pipe.execute_command(*command)
            replies += pipe.execute()
        return replies

    def embeddings(self, movie_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Embeddings (float32, shape (dim,)) of the given movies; unknown ids are absent."""
        return self.run(fetch_vectors_plan(self.alias, [int(i) for i in movie_ids]))

    def knn(
        self,
        vector: np.ndarray,
        k: int,
        *,
        exclude_ids: Collection[int] = (),
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        with_metadata: bool = False,
    ) -> list[ScoredMovie]:
        """The `k` movies nearest to an arbitrary vector of shape (dim,)."""
        return self.run(self._knn(vector, k, exclude_ids, genres, year_range, with_metadata))

    def similar_movies(
        self,
        movie_id: int,
        k: int = 10,
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        *,
        with_metadata: bool = True,
    ) -> list[ScoredMovie]:
        """The `k` nearest neighbours of a movie, itself excluded, nearest first.

        Args:
            movie_id: Query movie.
            k: Number of neighbours.
            genres: Keep only movies with any of these genres (case-insensitive).
            year_range: Keep only movies released in [min, max] (inclusive, None = open).
            with_metadata: Return title, year and genres with each result.

        Returns:
            Up to `k` results; score = cosine similarity to the query movie.

        Raises:
            MovieNotFoundError: `movie_id` is not in the index.
        """
        return self.run(self._similar(movie_id, k, genres, year_range, with_metadata))

    def recommend_for_seeds(
        self,
        seed_movie_ids: Sequence[int],
        k: int = 10,
        exclude_ids: Collection[int] = (),
        seed_weights: Sequence[float] | None = None,
        *,
        aggregation: Aggregation = "max",
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        with_metadata: bool = False,
    ) -> list[ScoredMovie]:
        """The `k` movies most similar to a user's seed movies, excluding seen ones.

        Aggregation over seeds (both exact w.r.t. the KNN results):

        * "max": score(x) = max_s w_s cos(s, x), weights scaled so the largest is 1; one
          KNN per seed (pipelined), merged client-side.
        * "sum": score(x) = sum_s w_s cos(s, x), weights scaled to sum to 1; computed as
          one KNN on the weighted centroid of the seed vectors.

        Args:
            seed_movie_ids: Seed movies (e.g. the user's top-rated); unknown ids are skipped.
            k: Number of results.
            exclude_ids: Movies never to return (e.g. everything the user has seen).
                Seeds are always excluded too.
            seed_weights: Positive weight per seed; None weighs all seeds equally.
            aggregation: "max" or "sum", see above.
            genres: Keep only movies with any of these genres (case-insensitive).
            year_range: Keep only movies released in [min, max] (inclusive, None = open).
            with_metadata: Return title, year and genres with each result.

        Returns:
            Exactly `k` results, best first, when at least `k` eligible movies exist (fewer
            otherwise); empty when no seed is in the index.
        """
        return self.run(
            self._recommend(
                seed_movie_ids,
                k,
                exclude_ids,
                seed_weights,
                aggregation,
                genres,
                year_range,
                with_metadata,
            )
        )

    def recommend_many(
        self,
        requests: Sequence[tuple[Sequence[int], Collection[int]]],
        k: int = 10,
        *,
        seed_weights: Sequence[Sequence[float] | None] | None = None,
        aggregation: Aggregation = "max",
    ) -> list[list[ScoredMovie]]:
        """`recommend_for_seeds` for many users in lockstep (two pipelined round trips).

        Args:
            requests: (seed_movie_ids, exclude_ids) per user.
            k: Results per user.
            seed_weights: Per user, weights aligned with its seeds (or None).
            aggregation: "max" or "sum".

        Returns:
            One result list per request, in order.
        """
        weights = seed_weights or [None] * len(requests)
        plans = [
            self._recommend(seeds, k, excluded, w, aggregation, None, None, False)
            for (seeds, excluded), w in zip(requests, weights, strict=True)
        ]
        return self.run_many(plans)


class AsyncVectorSearchClient(_Requests):
    """asyncio vector search over the movie index, for the online Content deployment.

    Same methods and semantics as `VectorSearchClient` (same plans), awaited. Create once per
    replica and reuse; the wrapped `redis.asyncio.Redis` pools its connections.

    Args:
        client: `redis.asyncio.Redis` with ``decode_responses=False``.
        alias: Index alias (or name) to query.
        ef_runtime: HNSW EF_RUNTIME per query; None keeps the index default.
        exclusion_filter_above: Exclusion sets larger than this are filtered inside the KNN
            instead of over-fetched (0: always filter).
    """

    def __init__(
        self,
        client: redis.asyncio.Redis,
        alias: str = DEFAULT_ALIAS,
        *,
        ef_runtime: int | None = None,
        exclusion_filter_above: int = EXCLUSION_FILTER_ABOVE,
    ) -> None:
        _check_client(client)
        self.client = client
        self.alias = alias
        self.ef_runtime = ef_runtime
        self.exclusion_filter_above = exclusion_filter_above

    @classmethod
    def from_url(
        cls, url: str, alias: str = DEFAULT_ALIAS, **kwargs: Any
    ) -> AsyncVectorSearchClient:
        """Connects to a Redis URL (e.g. "redis://:password@127.0.0.1:6400/0")."""
        return cls(redis.asyncio.Redis.from_url(url, decode_responses=False), alias, **kwargs)

    async def aclose(self) -> None:
        """Closes the underlying connections."""
        await self.client.aclose()

    async def run(self, plan: Plan[T]) -> T:
        """Executes one plan, one pipeline round trip per step."""
        try:
            commands = next(plan)
            while True:
                commands = plan.send(await self._execute(commands) if commands else [])
        except StopIteration as stop:
            return stop.value

    async def _execute(self, commands: list[Command]) -> list[Any]:
        if len(commands) == 1:
            return [await self.client.execute_command(*commands[0])]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())

    async def embeddings(self, movie_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Embeddings (float32, shape (dim,)) of the given movies; unknown ids are absent."""
        return await self.run(fetch_vectors_plan(self.alias, [int(i) for i in movie_ids]))

    async def knn(
        self,
        vector: np.ndarray,
        k: int,
        *,
        exclude_ids: Collection[int] = (),
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        with_metadata: bool = False,
    ) -> list[ScoredMovie]:
        """The `k` movies nearest to an arbitrary vector of shape (dim,)."""
        return await self.run(self._knn(vector, k, exclude_ids, genres, year_range, with_metadata))

    async def similar_movies(
        self,
        movie_id: int,
        k: int = 10,
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        *,
        with_metadata: bool = True,
    ) -> list[ScoredMovie]:
        """See `VectorSearchClient.similar_movies`.

        Raises:
            MovieNotFoundError: `movie_id` is not in the index.
        """
        return await self.run(self._similar(movie_id, k, genres, year_range, with_metadata))

    async def recommend_for_seeds(
        self,
        seed_movie_ids: Sequence[int],
        k: int = 10,
        exclude_ids: Collection[int] = (),
        seed_weights: Sequence[float] | None = None,
        *,
        aggregation: Aggregation = "max",
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        with_metadata: bool = False,
    ) -> list[ScoredMovie]:
        """See `VectorSearchClient.recommend_for_seeds`."""
        return await self.run(
            self._recommend(
                seed_movie_ids,
                k,
                exclude_ids,
                seed_weights,
                aggregation,
                genres,
                year_range,
                with_metadata,
            )
        )
