"""The content client: KNN query plans (`VectorSearch`) run by the sync and async transports on
a small synthetic index, checked against the exact numpy reference."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
import redis.asyncio

from models.content.client import AsyncRedisTransport, RedisTransport, VectorSearch
from models.content.exact import ExactIndex
from models.content.index import IndexConfig
from models.content.query import Aggregation, MovieNotFoundError, Plan, ScoredMovie, SearchFilter
from tests.models.content.conftest import N

pytestmark = pytest.mark.integration


@pytest.fixture(params=[0, 10**9], ids=["exclude-by-filter", "exclude-by-overfetch"])
def search(request: pytest.FixtureRequest, small_index: IndexConfig) -> VectorSearch:
    # EF_RUNTIME above the collection size: HNSW visits everything, so results are exact.
    return VectorSearch(small_index.alias, ef_runtime=2 * N, exclusion_filter_above=request.param)


@pytest.fixture(scope="module")
def transport(content_redis: redis.Redis) -> RedisTransport:
    return RedisTransport(content_redis)


Run = Callable[[Plan[Any]], Any]


@pytest.fixture
def run(transport: RedisTransport) -> Run:
    """Runs a plan on the sync transport."""
    return transport.run


def _ids(hits: list[ScoredMovie] | list[tuple[int, float]]) -> list[int]:
    return [h.movie_id if isinstance(h, ScoredMovie) else h[0] for h in hits]


def test_similar_movies_matches_exact_search(
    search: VectorSearch, exact: ExactIndex, run: Run
) -> None:
    for movie_id in (1, 2, 150, N):
        hits = run(search.similar_movies(movie_id, 10))
        assert movie_id not in _ids(hits)
        reference = exact.similar_movies(movie_id, 10)
        assert _ids(hits) == _ids(reference)
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in reference], atol=1e-5)
    hit = run(search.similar_movies(2, 1))[0]
    assert hit.title == f"Movie {hit.movie_id}" and hit.genres


def test_unknown_movie_raises(search: VectorSearch, run: Run) -> None:
    with pytest.raises(MovieNotFoundError) as info:
        run(search.similar_movies(N + 1000, 5))
    assert info.value.movie_id == N + 1000
    assert isinstance(info.value, LookupError)


@pytest.mark.parametrize(
    ("genres", "year_range"),
    [
        (["Children's"], None),
        (["Film-Noir", "Sci-Fi"], (1950, 1979)),
        (["film-noir"], (None, 1960)),
        (None, (1990, None)),
        (["Children's", "Film-Noir", "Sci-Fi"], (1945, 1995)),
    ],
)
def test_filtered_knn_returns_only_matching_movies(
    search: VectorSearch,
    catalogue: pd.DataFrame,
    exact: ExactIndex,
    genres: list[str] | None,
    year_range: tuple[int | None, int | None] | None,
    run: Run,
) -> None:
    def matches(row: pd.Series) -> bool:
        if genres and not {g.lower() for g in genres} & {g.lower() for g in row.genres}:
            return False
        if year_range is not None:
            low, high = year_range
            if pd.isna(row.year):
                return False
            if (low is not None and row.year < low) or (high is not None and row.year > high):
                return False
        return True

    eligible = {int(r.movie_id) for r in catalogue.itertuples() if matches(r)}
    hits = run(search.similar_movies(3, 15, search_filter=SearchFilter.of(genres, year_range)))
    assert len(hits) == min(15, len(eligible - {3}))
    assert set(_ids(hits)) <= eligible
    for hit in hits:
        if genres:
            assert {g.lower() for g in genres} & {g.lower() for g in hit.genres}
        if year_range is not None:
            assert hit.year is not None
    # Pre-filtering, not post-filtering: the same as exact search restricted to the filter.
    scores = exact.scores(exact.vector(3))
    excluded = set(catalogue["movie_id"].tolist()) - eligible | {3}
    assert _ids(hits) == _ids(exact.top_k(scores, 15, excluded))


@pytest.mark.parametrize("aggregation", ["max", "sum"])
def test_recommend_for_seeds_excludes_seen_and_matches_exact(
    search: VectorSearch, exact: ExactIndex, aggregation: Aggregation, run: Run
) -> None:
    rng = np.random.default_rng(3)
    seeds = [int(i) for i in rng.choice(np.arange(1, N + 1), size=5, replace=False)]
    seen = set(seeds) | {int(i) for i in rng.choice(np.arange(1, N + 1), size=120, replace=False)}
    for weights in (None, [5.0, 4.0, 4.0, 3.5, 1.0]):
        hits = run(
            search.recommend_for_seeds(
                seeds, 10, exclude_ids=seen, seed_weights=weights, aggregation=aggregation
            )
        )
        assert len(hits) == 10
        assert not set(_ids(hits)) & seen
        reference = exact.recommend_for_seeds(seeds, 10, seen, weights, aggregation)
        assert _ids(hits) == _ids(reference)
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in reference], atol=1e-5)


def test_exclusion_never_shrinks_results_below_k(search: VectorSearch, run: Run) -> None:
    seeds = [10, 20]
    # Exclude the 40 nearest neighbours of each seed: naive KNN(k) would return nothing.
    nearest = {h.movie_id for s in seeds for h in run(search.similar_movies(s, 40))}
    aggregations: tuple[Aggregation, ...] = ("max", "sum")
    for aggregation in aggregations:
        hits = run(search.recommend_for_seeds(seeds, 25, nearest, aggregation=aggregation))
        assert len(hits) == 25
        assert not set(_ids(hits)) & (nearest | set(seeds))
    # Only 5 eligible movies left: all of them, no more.
    everything = set(range(1, N + 1))
    leftover = {101, 102, 103, 104, 105}
    hits = run(search.recommend_for_seeds(seeds, 10, everything - leftover - set(seeds)))
    assert set(_ids(hits)) == leftover


def test_recommend_for_seeds_edge_cases(search: VectorSearch, run: Run) -> None:
    assert run(search.recommend_for_seeds([N + 1, N + 2], 10)) == []
    assert run(search.recommend_for_seeds([], 10)) == []
    known_only = run(search.recommend_for_seeds([N + 1, 7], 5))
    assert _ids(known_only) == _ids(run(search.similar_movies(7, 5)))
    with pytest.raises(ValueError, match="one weight per seed"):
        run(search.recommend_for_seeds([1, 2], 5, seed_weights=[1.0]))
    with pytest.raises(ValueError, match="positive"):
        run(search.recommend_for_seeds([1, 2], 5, seed_weights=[1.0, 0.0]))


def test_run_many_equals_one_by_one(
    search: VectorSearch, transport: RedisTransport, run: Run
) -> None:
    requests = [([1, 2, 3], {4, 5}), ([50], set()), ([N + 5], set()), ([7, 8], set(range(9, 60)))]
    batched = transport.run_many([search.recommend_for_seeds(s, 10, e) for s, e in requests])
    assert batched == [run(search.recommend_for_seeds(s, 10, e)) for s, e in requests]


def test_lockstep_sends_each_step_of_every_plan_as_one_batch(
    search: VectorSearch, content_redis: redis.Redis, run: Run
) -> None:
    batches: list[int] = []

    class Counting(RedisTransport):
        def _execute(self, commands: list[Any]) -> list[Any]:
            batches.append(len(commands))
            return super()._execute(commands)

    def plans() -> list[Plan[list[ScoredMovie]]]:
        return [
            search.recommend_for_seeds([1, 2], 5, aggregation="max"),
            search.recommend_for_seeds([3], 5, aggregation="max"),
            search.similar_movies(4, 5),
        ]

    together = Counting(content_redis).run_many(plans())
    # Step 1: the seed vectors (2 + 1) and movie 4's; step 2: one KNN per seed (2 + 1) + 1.
    assert batches == [4, 4]
    assert together == [run(plan) for plan in plans()]
    assert Counting(content_redis).run_many([]) == [] and batches == [4, 4]


def test_async_transport_gives_the_same_results(
    embedded_redis_url: str, small_index: IndexConfig, search: VectorSearch, run: Run
) -> None:
    sci_fi = SearchFilter.of(["Sci-Fi"], None)

    async def answers() -> tuple[list[ScoredMovie], list[ScoredMovie], list[list[ScoredMovie]]]:
        transport = AsyncRedisTransport.from_url(embedded_redis_url)
        try:
            similar = await transport.run(search.similar_movies(3, 10, sci_fi))
            recs = await transport.run(
                search.recommend_for_seeds([1, 2, 3], 10, {4, 5, 6}, aggregation="sum")
            )
            concurrent = await asyncio.gather(
                *(transport.run(search.similar_movies(i, 5)) for i in (1, 2, 3))
            )
            with pytest.raises(MovieNotFoundError):
                await transport.run(search.similar_movies(N + 1, 5))
            batched = await transport.run_many([search.similar_movies(i, 5) for i in (1, 2, 3)])
            assert batched == list(concurrent)
            return similar, recs, list(concurrent)
        finally:
            await transport.aclose()

    similar, recs, concurrent = asyncio.run(answers())
    assert similar == run(search.similar_movies(3, 10, sci_fi))
    assert recs == run(search.recommend_for_seeds([1, 2, 3], 10, {4, 5, 6}, aggregation="sum"))
    assert concurrent == [run(search.similar_movies(i, 5)) for i in (1, 2, 3)]


def test_text_decoding_clients_are_rejected(embedded_redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        RedisTransport(redis.Redis.from_url(embedded_redis_url, decode_responses=True))
    with pytest.raises(ValueError, match="decode_responses"):
        AsyncRedisTransport(redis.asyncio.Redis.from_url(embedded_redis_url, decode_responses=True))


def test_resp3_clients_give_the_same_results(
    embedded_redis_url: str, search: VectorSearch, run: Run
) -> None:
    resp3 = redis.Redis.from_url(embedded_redis_url, protocol=3)
    try:
        other = RedisTransport(resp3)
        assert other.run(search.similar_movies(3, 10)) == run(search.similar_movies(3, 10))
        seen = set(range(40, 90))
        assert other.run(search.recommend_for_seeds([1, 2], 10, seen)) == run(
            search.recommend_for_seeds([1, 2], 10, seen)
        )
    finally:
        resp3.close()
