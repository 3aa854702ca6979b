"""KNN queries on a small synthetic index, checked against the exact numpy reference."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import redis
import redis.asyncio

from models.content.client import AsyncVectorSearchClient, VectorSearchClient
from models.content.embeddings import embedding_matrix
from models.content.exact import ExactIndex
from models.content.index import IndexConfig, build_index
from models.content.query import Aggregation, MovieNotFoundError, ScoredMovie
from tests.models.content._helpers import drop_all_versions, synthetic_catalogue, unique_config

pytestmark = pytest.mark.integration

N = 300


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return synthetic_catalogue(N)


@pytest.fixture(scope="module")
def exact(catalogue: pd.DataFrame) -> ExactIndex:
    return ExactIndex(*embedding_matrix(catalogue))


@pytest.fixture(scope="module")
def small_index(content_redis: redis.Redis, catalogue: pd.DataFrame) -> Iterator[IndexConfig]:
    config = unique_config()
    build_index(content_redis, catalogue, config=config, version="v1")
    yield config
    drop_all_versions(content_redis, config)


@pytest.fixture(params=[0, 10**9], ids=["exclude-by-filter", "exclude-by-overfetch"])
def client(
    request: pytest.FixtureRequest, content_redis: redis.Redis, small_index: IndexConfig
) -> VectorSearchClient:
    # EF_RUNTIME above the collection size: HNSW visits everything, so results are exact.
    return VectorSearchClient(
        content_redis, small_index.alias, ef_runtime=2 * N, exclusion_filter_above=request.param
    )


def _ids(hits: list[ScoredMovie] | list[tuple[int, float]]) -> list[int]:
    return [h.movie_id if isinstance(h, ScoredMovie) else h[0] for h in hits]


def test_similar_movies_matches_exact_search(client: VectorSearchClient, exact: ExactIndex) -> None:
    for movie_id in (1, 2, 150, N):
        hits = client.similar_movies(movie_id, 10)
        assert movie_id not in _ids(hits)
        reference = exact.similar_movies(movie_id, 10)
        assert _ids(hits) == _ids(reference)
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in reference], atol=1e-5)
    hit = client.similar_movies(2, 1)[0]
    assert hit.title == f"Movie {hit.movie_id}" and hit.genres


def test_unknown_movie_raises(client: VectorSearchClient) -> None:
    with pytest.raises(MovieNotFoundError) as info:
        client.similar_movies(N + 1000, 5)
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
    client: VectorSearchClient,
    catalogue: pd.DataFrame,
    exact: ExactIndex,
    genres: list[str] | None,
    year_range: tuple[int | None, int | None] | None,
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
    hits = client.similar_movies(3, 15, genres=genres, year_range=year_range)
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
    client: VectorSearchClient, exact: ExactIndex, aggregation: Aggregation
) -> None:
    rng = np.random.default_rng(3)
    seeds = [int(i) for i in rng.choice(np.arange(1, N + 1), size=5, replace=False)]
    seen = set(seeds) | {int(i) for i in rng.choice(np.arange(1, N + 1), size=120, replace=False)}
    for weights in (None, [5.0, 4.0, 4.0, 3.5, 1.0]):
        hits = client.recommend_for_seeds(
            seeds, 10, exclude_ids=seen, seed_weights=weights, aggregation=aggregation
        )
        assert len(hits) == 10
        assert not set(_ids(hits)) & seen
        reference = exact.recommend_for_seeds(seeds, 10, seen, weights, aggregation)
        assert _ids(hits) == _ids(reference)
        np.testing.assert_allclose([h.score for h in hits], [s for _, s in reference], atol=1e-5)


def test_exclusion_never_shrinks_results_below_k(client: VectorSearchClient) -> None:
    seeds = [10, 20]
    # Exclude the 40 nearest neighbours of each seed: naive KNN(k) would return nothing.
    nearest = {h.movie_id for s in seeds for h in client.similar_movies(s, 40)}
    aggregations: tuple[Aggregation, ...] = ("max", "sum")
    for aggregation in aggregations:
        hits = client.recommend_for_seeds(seeds, 25, nearest, aggregation=aggregation)
        assert len(hits) == 25
        assert not set(_ids(hits)) & (nearest | set(seeds))
    # Only 5 eligible movies left: all of them, no more.
    everything = set(range(1, N + 1))
    leftover = {101, 102, 103, 104, 105}
    hits = client.recommend_for_seeds(seeds, 10, everything - leftover - set(seeds))
    assert set(_ids(hits)) == leftover


def test_recommend_for_seeds_edge_cases(client: VectorSearchClient) -> None:
    assert client.recommend_for_seeds([N + 1, N + 2], 10) == []
    assert client.recommend_for_seeds([], 10) == []
    known_only = client.recommend_for_seeds([N + 1, 7], 5)
    assert _ids(known_only) == _ids(client.similar_movies(7, 5))
    with pytest.raises(ValueError, match="one weight per seed"):
        client.recommend_for_seeds([1, 2], 5, seed_weights=[1.0])
    with pytest.raises(ValueError, match="positive"):
        client.recommend_for_seeds([1, 2], 5, seed_weights=[1.0, 0.0])


def test_recommend_many_equals_one_by_one(client: VectorSearchClient) -> None:
    requests = [([1, 2, 3], {4, 5}), ([50], set()), ([N + 5], set()), ([7, 8], set(range(9, 60)))]
    batched = client.recommend_many(requests, 10)
    assert batched == [client.recommend_for_seeds(s, 10, e) for s, e in requests]


def test_async_client_gives_the_same_results(
    embedded_redis_url: str, small_index: IndexConfig, client: VectorSearchClient
) -> None:
    async def run() -> tuple[list[ScoredMovie], list[ScoredMovie], list[list[ScoredMovie]]]:
        aclient = AsyncVectorSearchClient.from_url(
            embedded_redis_url,
            small_index.alias,
            ef_runtime=2 * N,
            exclusion_filter_above=client.exclusion_filter_above,
        )
        try:
            similar = await aclient.similar_movies(3, 10, genres=["Sci-Fi"])
            recs = await aclient.recommend_for_seeds([1, 2, 3], 10, {4, 5, 6}, aggregation="sum")
            concurrent = await asyncio.gather(*(aclient.similar_movies(i, 5) for i in (1, 2, 3)))
            with pytest.raises(MovieNotFoundError):
                await aclient.similar_movies(N + 1, 5)
            return similar, recs, list(concurrent)
        finally:
            await aclient.aclose()

    similar, recs, concurrent = asyncio.run(run())
    assert similar == client.similar_movies(3, 10, genres=["Sci-Fi"])
    assert recs == client.recommend_for_seeds([1, 2, 3], 10, {4, 5, 6}, aggregation="sum")
    assert concurrent == [client.similar_movies(i, 5) for i in (1, 2, 3)]


def test_text_decoding_clients_are_rejected(embedded_redis_url: str) -> None:
    with pytest.raises(ValueError, match="decode_responses"):
        VectorSearchClient(redis.Redis.from_url(embedded_redis_url, decode_responses=True))
    with pytest.raises(ValueError, match="decode_responses"):
        AsyncVectorSearchClient(
            redis.asyncio.Redis.from_url(embedded_redis_url, decode_responses=True)
        )


def test_resp3_clients_give_the_same_results(
    embedded_redis_url: str, small_index: IndexConfig, client: VectorSearchClient
) -> None:
    resp3 = redis.Redis.from_url(embedded_redis_url, protocol=3)
    try:
        other = VectorSearchClient(
            resp3,
            small_index.alias,
            ef_runtime=2 * N,
            exclusion_filter_above=client.exclusion_filter_above,
        )
        assert other.similar_movies(3, 10) == client.similar_movies(3, 10)
        seen = set(range(40, 90))
        assert other.recommend_for_seeds([1, 2], 10, seen) == client.recommend_for_seeds(
            [1, 2], 10, seen
        )
    finally:
        resp3.close()
