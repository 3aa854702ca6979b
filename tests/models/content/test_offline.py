"""Seed selection and the exact offline recommender (no services)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.content.exact import ExactIndex
from models.content.offline import SeedPolicy, exact_recommendations, select_seeds
from models.content.query import Aggregation

RATINGS = pd.DataFrame(
    {
        "user_id": [1, 1, 1, 1, 1, 2, 2, 2],
        "movie_id": [10, 11, 12, 13, 14, 10, 11, 12],
        "rating": np.array([5, 5, 4, 3, 5, 2, 3, 1], dtype=np.float32),
        "timestamp": [100, 300, 200, 400, 300, 10, 20, 30],
    }
)


def _seeds(policy: SeedPolicy) -> dict[int, list[int]]:
    seeds = select_seeds(RATINGS, policy)
    return {int(u): g["movie_id"].tolist() for u, g in seeds.groupby("user_id")}


def test_select_seeds_rating_then_recency_then_id() -> None:
    # User 1: three 5-star movies, 11 and 14 both at t=300 (tie -> smaller id first).
    assert _seeds(SeedPolicy(n_seeds=3)) == {1: [11, 14, 10], 2: [11, 10, 12]}
    assert _seeds(SeedPolicy(n_seeds=2, order="recency")) == {1: [13, 11], 2: [12, 11]}


def test_select_seeds_min_rating_falls_back_for_users_without_likes() -> None:
    assert _seeds(SeedPolicy(n_seeds=10, min_rating=4)) == {1: [11, 14, 10, 12], 2: [11, 10, 12]}


def test_select_seeds_weights() -> None:
    uniform = select_seeds(RATINGS, SeedPolicy(n_seeds=2))
    assert uniform["weight"].tolist() == [1.0] * 4
    rated = select_seeds(RATINGS, SeedPolicy(n_seeds=2, weighting="rating"))
    assert rated["weight"].tolist() == [5.0, 5.0, 3.0, 2.0]


def test_exact_recommendations_exclude_training_items() -> None:
    rng = np.random.default_rng(0)
    ids = np.arange(10, 40, dtype=np.int64)
    index = ExactIndex(ids, rng.normal(size=(30, 8)).astype(np.float32))
    aggregations: tuple[Aggregation, ...] = ("max", "sum")
    for aggregation in aggregations:
        recs = exact_recommendations(index, RATINGS, 5, aggregation=aggregation)
        assert recs.columns.tolist() == ["user_id", "rank", "movie_id", "score"]
        assert recs.groupby("user_id")["rank"].agg(list).tolist() == [[1, 2, 3, 4, 5]] * 2
        for user_id, group in recs.groupby("user_id"):
            seen = set(RATINGS.loc[RATINGS["user_id"] == user_id, "movie_id"])
            assert not set(group["movie_id"]) & seen
            assert group["score"].is_monotonic_decreasing


def test_exact_index_max_and_sum_definitions() -> None:
    vectors = np.array([[1, 0], [0, 1], [1, 1], [1, -1], [-1, 0]], dtype=np.float32)
    index = ExactIndex(np.arange(1, 6), vectors)
    c = 1 / np.sqrt(2)
    # Seeds 1 and 2: movie 3 is at cos 0.707 to both; movie 4 at 0.707 / -0.707.
    assert index.recommend_for_seeds([1, 2], 3, aggregation="max") == [
        (3, np.float32(c).item()), (4, np.float32(c).item()), (5, 0.0),
    ]  # fmt: skip
    top = index.recommend_for_seeds([1, 2], 2, aggregation="sum")
    assert [m for m, _ in top] == [3, 4]
    assert np.isclose(top[0][1], c) and np.isclose(top[1][1], 0.0, atol=1e-7)
