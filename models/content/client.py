"""Vector search against Redis: one query implementation, two tiny transports.

The queries are written once, as I/O-free plans (`models.content.query`); `VectorSearch`
binds them to an index alias and its query knobs. A transport only executes plans: it sends
each batch of commands a plan yields (one command directly, several as one
non-transactional pipeline) and sends the replies back.

* `RedisTransport` (`redis.Redis`): offline evaluation, benchmarks and scripts;
  `run_many` advances many plans in lockstep (`lockstep`), so a batch of users costs two
  pipelined round trips in total.
* `AsyncRedisTransport` (`redis.asyncio.Redis`): the online Content deployment.

Why plans and not one async client with a sync wrapper: a sync wrapper would run an event
loop inside evaluation code (and fail under a running loop), while a plan runs the same on
either transport and batches across users for free. Usage::

    search = VectorSearch("movies")
    with RedisTransport.from_url(url) as redis:
        hits = redis.run(search.similar_movies(50, 10))
    hits = await async_redis.run(search.similar_movies(50, 10))

Clients must use ``decode_responses=False`` (vectors are binary); RESP2 and RESP3 both work.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from types import TracebackType
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
    fetch_vectors_plan,
    knn_plan,
    recommend_for_seeds_plan,
    similar_movies_plan,
)


@dataclass(frozen=True)
class VectorSearch:
    """The content queries on one index alias; every method returns a plan (no I/O).

    Attributes:
        alias: Index alias (or name) to query.
        ef_runtime: HNSW EF_RUNTIME per query; None keeps the index default.
        exclusion_filter_above: Exclusion sets larger than this are filtered inside the KNN
            instead of over-fetched (0: always filter).
    """

    alias: str = DEFAULT_ALIAS
    ef_runtime: int | None = None
    exclusion_filter_above: int = EXCLUSION_FILTER_ABOVE

    def embeddings(self, movie_ids: Sequence[int]) -> Plan[dict[int, np.ndarray]]:
        """Embeddings (float32, [dim]) of the given movies; unknown ids are absent."""
        return fetch_vectors_plan(self.alias, [int(i) for i in movie_ids])

    def knn(
        self,
        vector: np.ndarray,
        k: int,
        *,
        exclude_ids: Collection[int] = (),
        search_filter: SearchFilter | None = None,
        with_metadata: bool = False,
    ) -> Plan[list[ScoredMovie]]:
        """The `k` movies nearest to an arbitrary vector of shape [dim], none excluded."""
        return knn_plan(
            self.alias,
            vector,
            k,
            exclude_ids=exclude_ids,
            search_filter=search_filter,
            ef_runtime=self.ef_runtime,
            with_metadata=with_metadata,
            exclusion_filter_above=self.exclusion_filter_above,
        )

    def similar_movies(
        self,
        movie_id: int,
        k: int = 10,
        search_filter: SearchFilter | None = None,
        *,
        with_metadata: bool = True,
    ) -> Plan[list[ScoredMovie]]:
        """The `k` nearest neighbours of a movie, itself excluded, nearest first.

        Args:
            movie_id: Query movie.
            k: Number of neighbours.
            search_filter: Genres (any of, case-insensitive) and inclusive year range,
                applied inside the KNN; None for no filter.
            with_metadata: Return title, year and genres with each result.

        Returns:
            A plan of up to `k` results; score = cosine similarity to the query movie. It
            raises `MovieNotFoundError` when `movie_id` is not in the index.
        """
        return similar_movies_plan(
            self.alias,
            int(movie_id),
            k,
            search_filter=search_filter,
            ef_runtime=self.ef_runtime,
            with_metadata=with_metadata,
        )

    def recommend_for_seeds(
        self,
        seed_movie_ids: Sequence[int],
        k: int = 10,
        exclude_ids: Collection[int] = (),
        seed_weights: Sequence[float] | None = None,
        *,
        aggregation: Aggregation = "max",
        search_filter: SearchFilter | None = None,
        with_metadata: bool = False,
    ) -> Plan[list[ScoredMovie]]:
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
            search_filter: Genres and year range, applied inside the KNN; None for none.
            with_metadata: Return title, year and genres with each result.

        Returns:
            A plan of exactly `k` results, best first, when at least `k` eligible movies
            exist (fewer otherwise); empty when no seed is in the index.
        """
        return recommend_for_seeds_plan(
            self.alias,
            seed_movie_ids,
            k,
            exclude_ids=exclude_ids,
            seed_weights=seed_weights,
            aggregation=aggregation,
            search_filter=search_filter,
            ef_runtime=self.ef_runtime,
            with_metadata=with_metadata,
            exclusion_filter_above=self.exclusion_filter_above,
        )


def lockstep(plans: Sequence[Plan[T]]) -> Plan[list[T]]:
    """One plan running `plans` in lockstep: each step sends every pending command at once.

    Returns:
        A plan of the plans' results, in order.
    """
    results: list[Any] = [None] * len(plans)
    pending: dict[int, list[Command]] = {}
    for i in range(len(plans)):
        _advance(plans, i, None, pending, results)
    while pending:
        order = list(pending)
        replies = yield [cmd for i in order for cmd in pending[i]]
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


def _check_client(client: Any) -> None:
    kwargs = client.get_connection_kwargs()
    if kwargs.get("decode_responses"):
        raise ValueError("the Redis client must use decode_responses=False (vectors are binary)")


class RedisTransport:
    """Runs plans on a synchronous `redis.Redis` (offline evaluation, benchmarks, scripts).

    Create once and reuse; the wrapped client keeps its connections open.

    Args:
        client: Redis connection with ``decode_responses=False``.
        max_pipeline: Commands per pipeline round trip.
    """

    def __init__(self, client: redis.Redis, *, max_pipeline: int = 512) -> None:
        _check_client(client)
        self.client = client
        self.max_pipeline = max_pipeline

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisTransport:
        """Connects to a Redis URL (e.g. "redis://:password@127.0.0.1:6400/0")."""
        return cls(redis.Redis.from_url(url, decode_responses=False), **kwargs)

    def __enter__(self) -> RedisTransport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the underlying connections."""
        self.client.close()

    def run(self, plan: Plan[T]) -> T:
        """Executes one plan, one round trip per step."""
        try:
            commands = next(plan)
            while True:
                commands = plan.send(self._execute(commands) if commands else [])
        except StopIteration as stop:
            result: T = stop.value
            return result

    def run_many(self, plans: Sequence[Plan[T]]) -> list[T]:
        """Executes plans in lockstep, their commands batched into shared pipelines."""
        return self.run(lockstep(plans))

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


class AsyncRedisTransport:
    """Runs plans on a `redis.asyncio.Redis` (the online Content deployment).

    Create once per replica and reuse; the wrapped client pools its connections, so
    concurrent plans run concurrently.

    Args:
        client: `redis.asyncio.Redis` with ``decode_responses=False``.
    """

    def __init__(self, client: redis.asyncio.Redis) -> None:
        _check_client(client)
        self.client = client

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AsyncRedisTransport:
        """Connects to a Redis URL (`kwargs` go to `redis.asyncio.Redis.from_url`)."""
        return cls(redis.asyncio.Redis.from_url(url, decode_responses=False, **kwargs))

    async def aclose(self) -> None:
        """Closes the underlying connections."""
        await self.client.aclose()

    async def run(self, plan: Plan[T]) -> T:
        """Executes one plan, one round trip per step."""
        try:
            commands = next(plan)
            while True:
                commands = plan.send(await self._execute(commands) if commands else [])
        except StopIteration as stop:
            result: T = stop.value
            return result

    async def run_many(self, plans: Sequence[Plan[T]]) -> list[T]:
        """Executes plans in lockstep, their commands batched into shared pipelines."""
        return await self.run(lockstep(plans))

    async def _execute(self, commands: list[Command]) -> list[Any]:
        if len(commands) == 1:
            return [await self.client.execute_command(*commands[0])]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())
