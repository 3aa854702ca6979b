"""Evaluation protocol helpers and the popularity baseline on tiny tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.evaluation.popularity import popularity_ranking, popularity_recommendations
from models.metrics.protocol import (
    candidate_recall,
    evaluate_recommendations,
    evaluation_report,
    items_by_user,
    remove_seen,
    top_k_unseen,
)


def ratings(rows: list[tuple[int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id"])
    frame["rating"] = 4.0
    frame["timestamp"] = np.arange(len(frame), dtype=np.int64)
    return frame


# Training counts: movie 10 -> 3, movie 20 -> 2, movie 30 -> 2, movie 40 -> 1.
TRAIN = ratings([(1, 10), (2, 10), (3, 10), (1, 20), (2, 20), (3, 30), (2, 30), (3, 40)])
TEST = ratings([(1, 30), (1, 40), (2, 40), (3, 20)])


def test_items_by_user() -> None:
    assert items_by_user(TEST) == {1: {30, 40}, 2: {40}, 3: {20}}


def test_remove_seen_keeps_order() -> None:
    assert remove_seen([5, 1, 4, 2], {1, 2}) == [5, 4]
    assert remove_seen([5, 1, 4, 2], {1}, k=2) == [5, 4]


def test_popularity_ranking_breaks_ties_by_id() -> None:
    assert popularity_ranking(TRAIN).tolist() == [10, 20, 30, 40]


def test_popularity_recommendations_remove_seen() -> None:
    recs = popularity_recommendations(TRAIN, [1, 2, 3, 99], k=2)
    assert recs == {1: [30, 40], 2: [40], 3: [20], 99: [10, 20]}


def test_popularity_end_to_end_by_hand() -> None:
    # k = 2. User 1: [30, 40] vs {30, 40} -> P 1, R 1, nDCG 1, AP 1.
    # User 2: [40] vs {40} -> P 1/2, R 1, nDCG 1, AP 1.
    # User 3: [20] vs {20} -> P 1/2, R 1, nDCG 1, AP 1.
    recs = popularity_recommendations(TRAIN, [1, 2, 3], k=2)
    m = evaluate_recommendations(recs, TEST, k=2)
    assert m.users == 3
    assert m.precision == pytest.approx(2 / 3)
    assert (m.recall, m.ndcg, m.map) == pytest.approx((1.0, 1.0, 1.0))


def test_evaluate_removes_training_items_before_cutting() -> None:
    # User 1's raw list [10, 20, 40, 30]; 10 and 20 were seen -> [40, 30]: both hits.
    m = evaluate_recommendations({1: [10, 20, 40, 30]}, TEST[TEST.user_id == 1], TRAIN, k=2)
    assert (m.precision, m.ndcg) == pytest.approx((1.0, 1.0))
    # Without the training table the top 2 are [10, 20]: no hit.
    m = evaluate_recommendations({1: [10, 20, 40, 30]}, TEST[TEST.user_id == 1], None, k=2)
    assert m.precision == 0.0


def test_top_k_unseen_from_scores() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4]])
    items = np.array([10, 20, 30, 40])
    out = top_k_unseen(scores, items, [1, 2], {1: {10}, 2: set()}, k=2)
    assert out == {1: [20, 40], 2: [40, 30]}
    # Fewer unseen items than k: the list is shorter, never padded with seen items.
    out = top_k_unseen(scores, items, [1], {1: {10, 20, 30}}, k=3)
    assert out == {1: [40]}


def test_candidate_recall_is_pooled_over_pairs() -> None:
    # 3 relevant pairs in total, 2 inside the top 2 -> 2/3 (per-user mean would be 3/4).
    recs = {1: [1, 2, 3], 2: [5, 6]}
    rel = {1: {1, 3}, 2: {6}}
    assert candidate_recall(recs, rel, k=2) == pytest.approx(2 / 3)
    assert candidate_recall(recs, rel, k=3) == pytest.approx(1.0)
    assert math.isclose(candidate_recall({}, {1: set()}, k=5), 0.0)


def test_evaluation_report_keys_and_values() -> None:
    # User 1: [10, 20, 40, 30] minus seen {10, 20} -> [40, 30], both relevant.
    report = evaluation_report(
        {1: [10, 20, 40, 30]}, TEST[TEST.user_id == 1], TRAIN, k=2, candidate_ks=(1,)
    )
    assert report == pytest.approx(
        {
            "ndcg@2": 1.0,
            "precision@2": 1.0,
            "recall@2": 1.0,
            "map@2": 1.0,
            "map_legacy@2": 1.0,
            "candidate_recall@1": 0.5,
            "users": 1.0,
        }
    )
