"""The content runtime: liked movies -> seeds -> KNN -> ScoredMovies, on the synthetic index,
checked against the exact numpy reference (EF_RUNTIME above the catalogue size: exact HNSW)."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest
import redis

from models.content.client import AsyncRedisTransport, RedisTransport, VectorSearch
from models.content.exact import ExactIndex
from models.content.index import IndexConfig
from models.content.query import Aggregation
from models.content.runtime import ContentRuntime
from movierec.payloads import CandidateFilter, ScoredMovies
from tests.models.content.conftest import N

pytestmark = pytest.mark.integration

LIKED = (12, 40, 7, 150, 299, 3)
SEEN = frozenset({*LIKED, 1, 2, 4, 5, 60, 61, 62})


@pytest.fixture
def search(small_index: IndexConfig) -> VectorSearch:
    return VectorSearch(small_index.alias, ef_runtime=2 * N)


@pytest.fixture
def transport(content_redis: redis.Redis) -> RedisTransport:
    return RedisTransport(content_redis)


@pytest.mark.parametrize("aggregation", ["max", "sum"])
def test_candidates_are_the_nearest_unseen_movies_to_the_first_seeds(
    search: VectorSearch, transport: RedisTransport, exact: ExactIndex, aggregation: Aggregation
) -> None:
    runtime = ContentRuntime(search, aggregation)
    excluded = frozenset({100, 101, 102})
    movies = transport.run(
        runtime.candidates(LIKED, SEEN, 20, CandidateFilter(exclude=excluded), n_seeds=4)
    )
    assert isinstance(movies, ScoredMovies) and len(movies) == 20
    assert movies.movie_ids.dtype == np.int64 and movies.scores.dtype == np.float32
    assert not set(movies.movie_ids.tolist()) & (SEEN | excluded)
    # Seeds: the first 4 liked movies; excluded: seen, the request's, the seeds.
    reference = exact.recommend_for_seeds(LIKED[:4], 20, SEEN | excluded, None, aggregation)
    assert movies.movie_ids.tolist() == [movie for movie, _ in reference]
    np.testing.assert_allclose(movies.scores, [s for _, s in reference], atol=1e-5)


def test_genre_and_year_filters_apply_inside_the_knn(
    search: VectorSearch, transport: RedisTransport, exact: ExactIndex, catalogue: pd.DataFrame
) -> None:
    allowed = CandidateFilter(genres=("Sci-Fi", "Film-Noir"), year_range=(1950, None))
    eligible = {
        int(row.movie_id)
        for row in catalogue.itertuples()
        if {"Sci-Fi", "Film-Noir"} & set(row.genres) and not pd.isna(row.year) and row.year >= 1950
    }
    runtime = ContentRuntime(search, "sum")
    movies = transport.run(runtime.candidates(LIKED, SEEN, 10, allowed, n_seeds=3))
    assert len(movies) == 10  # pre-filtered: never short while 10 movies qualify
    assert set(movies.movie_ids.tolist()) <= eligible - SEEN
    everything = set(catalogue["movie_id"].tolist())
    reference = exact.recommend_for_seeds(
        LIKED[:3], 10, SEEN | (everything - eligible), None, "sum"
    )
    assert movies.movie_ids.tolist() == [movie for movie, _ in reference]


def test_no_candidates_without_seeds_or_room(
    search: VectorSearch, transport: RedisTransport
) -> None:
    runtime = ContentRuntime(search)
    assert len(transport.run(runtime.candidates((), SEEN, 10))) == 0
    assert len(transport.run(runtime.candidates(LIKED, SEEN, 0))) == 0
    assert len(transport.run(runtime.candidates((N + 7,), frozenset(), 10))) == 0  # not indexed


def test_max_k_bounds_a_request(search: VectorSearch, transport: RedisTransport) -> None:
    runtime = ContentRuntime(search, "max", max_k=5)
    assert len(transport.run(runtime.candidates(LIKED, SEEN, 50))) == 5
    similar = transport.run(runtime.similar(3, 50))
    assert similar is not None and len(similar) == 5


def test_seed_weights_follow_the_liked_order(
    search: VectorSearch, transport: RedisTransport, exact: ExactIndex
) -> None:
    runtime = ContentRuntime(search, "max")
    weights = [5.0, 1.0, 3.0, 2.0, 4.0, 1.0]
    hits = transport.run(runtime.recommend(LIKED, SEEN, 10, n_seeds=3, seed_weights=weights))
    reference = exact.recommend_for_seeds(LIKED[:3], 10, SEEN, weights[:3], "max")
    assert [hit.movie_id for hit in hits] == [movie for movie, _ in reference]


def test_similar_scores_neighbours_and_knows_unknown_movies(
    search: VectorSearch, transport: RedisTransport, exact: ExactIndex
) -> None:
    runtime = ContentRuntime(search)
    movies = transport.run(runtime.similar(150, 10))
    assert movies is not None
    reference = exact.similar_movies(150, 10)
    assert movies.movie_ids.tolist() == [movie for movie, _ in reference]
    np.testing.assert_allclose(movies.scores, [s for _, s in reference], atol=1e-5)
    assert transport.run(runtime.similar(N + 1000, 10)) is None


def test_serving_and_evaluation_transports_agree(
    search: VectorSearch, transport: RedisTransport, embedded_redis_url: str
) -> None:
    runtime = ContentRuntime(search, "sum")
    allowed = CandidateFilter(exclude=frozenset({20, 21}), genres=("Drama",))

    async def served() -> ScoredMovies:
        online = AsyncRedisTransport.from_url(embedded_redis_url)
        try:
            return await online.run(runtime.candidates(LIKED, SEEN, 15, allowed, n_seeds=2))
        finally:
            await online.aclose()

    offline = transport.run(runtime.candidates(LIKED, SEEN, 15, allowed, n_seeds=2))
    online = asyncio.run(served())
    assert online.movie_ids.tolist() == offline.movie_ids.tolist()
    np.testing.assert_array_equal(online.scores, offline.scores)
