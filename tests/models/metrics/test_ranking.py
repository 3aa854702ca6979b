"""Ranking metrics against values computed by hand."""

from __future__ import annotations

import math

import pytest

from models.metrics.ranking import (
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

# One user: list [1, 2, 3, 4, 5], relevant {2, 5, 9}, k = 5.
#   hits at ranks 2 and 5                   -> precision 2/5, recall 2/3
#   DCG  = 1/ln 3 + 1/ln 6
#   IDCG = 1/ln 2 + 1/ln 3 + 1/ln 4          (min(3 relevant, k=5) = 3 ideal hits)
#   AP   = (1/2 + 2/5) / min(3, 5) = 0.3
ONE_REC = {1: [1, 2, 3, 4, 5]}
ONE_REL = {1: {2, 5, 9}}
ONE_NDCG = (1 / math.log(3) + 1 / math.log(6)) / (
    1 / math.log(2) + 1 / math.log(3) + 1 / math.log(4)
)


def test_single_user_by_hand() -> None:
    m = ranking_metrics(ONE_REC, ONE_REL, k=5)
    assert m.users == 1
    assert m.precision == pytest.approx(0.4)
    assert m.recall == pytest.approx(2 / 3)
    assert m.ndcg == pytest.approx(ONE_NDCG)
    assert math.isclose(ONE_NDCG, 1.017782 / 2.130930, abs_tol=1e-6)  # log2 discounts
    assert m.map == pytest.approx(0.3)


def test_wrappers_match_ranking_metrics() -> None:
    assert precision_at_k(ONE_REC, ONE_REL, k=5) == pytest.approx(0.4)
    assert recall_at_k(ONE_REC, ONE_REL, k=5) == pytest.approx(2 / 3)
    assert ndcg_at_k(ONE_REC, ONE_REL, k=5) == pytest.approx(ONE_NDCG)
    assert map_at_k(ONE_REC, ONE_REL, k=5) == pytest.approx(0.3)


def test_only_top_k_counts() -> None:
    # k = 1 keeps [1]: no hit.
    m = ranking_metrics(ONE_REC, ONE_REL, k=1)
    assert (m.precision, m.recall, m.ndcg, m.map) == (0.0, 0.0, 0.0, 0.0)


def test_map_denominator_when_more_relevant_than_k() -> None:
    # List [7, 8, 9], relevant {8, 9, 10}, k = 2: one hit at rank 2.
    #   AP min_k    = (1/2) / min(3, 2) = 0.25
    #   AP relevant = (1/2) / 3         = 1/6
    #   nDCG        = (1/ln 3) / (1/ln 2 + 1/ln 3)
    rec, rel = {1: [7, 8, 9]}, {1: {8, 9, 10}}
    m = ranking_metrics(rec, rel, k=2)
    assert m.precision == pytest.approx(0.5)
    assert m.recall == pytest.approx(1 / 3)
    assert m.map == pytest.approx(0.25)
    assert m.ndcg == pytest.approx((1 / math.log(3)) / (1 / math.log(2) + 1 / math.log(3)))
    legacy = ranking_metrics(rec, rel, k=2, map_denominator="relevant")
    assert legacy.map == pytest.approx(1 / 6)
    assert legacy.ndcg == m.ndcg


def test_perfect_list_scores_one() -> None:
    m = ranking_metrics({1: [3, 1, 2]}, {1: {1, 2, 3}}, k=3)
    assert (m.precision, m.recall, m.ndcg, m.map) == pytest.approx((1.0, 1.0, 1.0, 1.0))


def test_average_over_users_with_relevant_items() -> None:
    # User 1: perfect at k=2 -> all 1. User 2: list [5, 6], relevant {6}:
    #   precision 1/2, recall 1, nDCG (1/ln 3)/(1/ln 2), AP (1/2)/1.
    # User 3 has no relevant items: skipped. User 4 has relevant items but no list: all 0.
    rec = {1: [1, 2], 2: [5, 6], 3: [1, 2]}
    rel = {1: {1, 2}, 2: {6}, 3: set(), 4: {1}}
    m = ranking_metrics(rec, rel, k=2)
    assert m.users == 3
    assert m.precision == pytest.approx((1 + 0.5 + 0) / 3)
    assert m.recall == pytest.approx((1 + 1 + 0) / 3)
    assert m.ndcg == pytest.approx((1 + math.log(2) / math.log(3) + 0) / 3)
    assert m.map == pytest.approx((1 + 0.5 + 0) / 3)


def test_short_list_precision_divides_by_k() -> None:
    m = ranking_metrics({1: [4]}, {1: {4}}, k=10)
    assert m.precision == pytest.approx(0.1)
    assert m.recall == pytest.approx(1.0)
    assert m.ndcg == pytest.approx(1.0)
    assert m.map == pytest.approx(1.0)


def test_no_users_gives_zeros() -> None:
    m = ranking_metrics({}, {1: set()}, k=10)
    assert m.users == 0
    assert m.ndcg == 0.0


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="repeat"):
        ranking_metrics({1: [1, 1]}, {1: {1}}, k=2)
    with pytest.raises(ValueError, match="k must"):
        ranking_metrics({1: [1]}, {1: {1}}, k=0)
    with pytest.raises(ValueError, match="map_denominator"):
        ranking_metrics({1: [1]}, {1: {1}}, k=1, map_denominator="bogus")  # type: ignore[arg-type]


def test_ndcg_per_user_averages_to_ranking_metrics_ndcg() -> None:
    from models.metrics.ranking import ndcg_per_user, ranking_metrics

    recommended = {1: [5, 6, 7], 2: [9, 8], 3: []}
    relevant = {1: {6}, 2: {8, 9, 10}, 3: {4}, 4: set()}
    per_user = ndcg_per_user(recommended, relevant, k=3)
    assert set(per_user) == {1, 2, 3}  # a user with nothing relevant is not evaluated
    assert per_user[3] == 0.0 and 0.0 < per_user[1] < per_user[2] < 1.0
    mean = sum(per_user.values()) / len(per_user)
    assert mean == ranking_metrics(recommended, relevant, k=3).ndcg
