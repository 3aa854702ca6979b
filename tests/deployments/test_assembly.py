"""Candidate assembly: merge, filter, fill, cut, and the ranker's columns (hand-computed)."""

from __future__ import annotations

import math

import numpy as np

from deployments.assembly import rank_query, select_candidates, source_lists
from deployments.catalog import Catalog, Movie
from deployments.request import RecommendRequest
from movierec.candidates import RRF_K
from movierec.payloads import CandidateFilter, ScoredMovies, UserProfile

CATALOG = Catalog(
    [
        Movie(1, "A", ("Drama",), 1990),
        Movie(2, "B", ("Comedy",), 1995),
        Movie(3, "C", ("Drama",), 2000),
        Movie(4, "D", ("Horror",), 1980),
        Movie(5, "E", ("Comedy",), 1999),
    ],
    popular_ids=[5, 4, 3, 2, 1],
)


def test_retrieval_drops_seen_and_popular_joins_only_when_a_source_failed() -> None:
    retrieved = ScoredMovies.of([1, 2, 3], [3.0, 2.0, 1.0])
    content = ScoredMovies.of([4], [0.9])
    popular = [(5, 1.0)]
    lists = source_lists(retrieved, content, frozenset({2}), popular)
    assert lists == {"retrieval": [(1, 3.0), (3, 1.0)], "content": [(4, 0.8999999761581421)]}
    assert source_lists(retrieved, None, frozenset(), popular)["popular"] == popular
    assert source_lists(None, ScoredMovies.empty(), frozenset(), popular) == {"popular": popular}


def test_select_filters_fills_with_popular_and_cuts() -> None:
    lists = {"retrieval": [(1, 3.0), (3, 1.0), (4, 0.5)], "content": [(3, 0.9)]}
    request = RecommendRequest(
        user_id=7, k=3, allowed=CandidateFilter(exclude=frozenset({4}), year_range=(1985, None))
    )
    merged, kept = select_candidates(CATALOG, lists, {}, frozenset({1}), request, max_ranked=10)
    # 3: 1/(60+2) + 1/(60+1) beats 1: 1/(60+1); 1 is seen, 4 excluded (and too old)
    assert [c.movie_id for c in merged] == [3, 1, 4]
    assert math.isclose(merged[0].merged_score, 1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    # one real candidate: filled with popular movies passing the filters (5 then 2)
    assert [c.movie_id for c in kept] == [3, 5, 2]
    assert kept[1].sources == ["popular"] and kept[1].merged_score < kept[0].merged_score
    _, cut = select_candidates(CATALOG, lists, {}, frozenset({1}), request, max_ranked=2)
    assert [c.movie_id for c in cut] == [3, 5]


def test_rank_query_lays_out_candidate_columns_with_nan_for_missing_sources() -> None:
    lists = {"retrieval": [(1, 3.0), (3, 1.0)], "content": [(3, 0.5)]}
    _, kept = select_candidates(
        CATALOG, lists, {}, frozenset(), RecommendRequest(1, 2), max_ranked=5
    )
    query = rank_query(UserProfile(1, {"user_rating_mean": 4.0}), kept)
    assert query.movie_ids.tolist() == [3, 1] and query.movie_ids.dtype == np.int64
    assert query.user == {"user_rating_mean": 4.0}
    np.testing.assert_array_equal(query.candidates["retrieval_rank"], [2.0, 1.0])
    np.testing.assert_array_equal(query.candidates["content_score"], [0.5, np.nan])
    np.testing.assert_array_equal(query.candidates["in_content"], [1.0, 0.0])
    assert np.isnan(query.candidates["popular_rank"]).all()
    assert all(column.dtype == np.float64 for column in query.candidates.values())
