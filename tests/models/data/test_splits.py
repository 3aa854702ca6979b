from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.data.errors import DatasetError
from models.data.splits import leave_last_n_out, stratified_split, temporal_share_split


def make_ratings(counts: dict[int, int], seed: int = 0) -> pd.DataFrame:
    """Ratings for users with the given number of ratings each, rows shuffled."""
    users = np.repeat(list(counts), list(counts.values()))
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": users.astype("int64"),
            "movie_id": np.arange(len(users), dtype="int64") + 1000,
            "rating": rng.integers(1, 6, len(users)).astype("float32"),
            "timestamp": rng.integers(0, 10**9, len(users)).astype("int64"),
        }
    )
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


RATINGS = make_ratings({1: 20, 2: 7, 3: 4, 4: 1, 5: 2, 6: 33, 7: 100})


def assert_partition(ratings: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame) -> None:
    assert set(train.index).isdisjoint(test.index)
    rebuilt = pd.concat([train, test]).sort_index()
    pd.testing.assert_frame_equal(rebuilt, ratings)
    assert set(train["user_id"]) == set(ratings["user_id"])  # no user lost


def test_stratified_is_a_partition_keeping_every_user() -> None:
    train, test = stratified_split(RATINGS)
    assert_partition(RATINGS, train, test)
    assert train.index.is_monotonic_increasing  # input order kept
    assert test.index.is_monotonic_increasing


def test_stratified_puts_ratio_of_each_user_in_train() -> None:
    train, _ = stratified_split(RATINGS, ratio=0.75)
    per_user = train.groupby("user_id").size().to_dict()
    for user, total in RATINGS.groupby("user_id").size().to_dict().items():
        expected = max(1, math.floor(0.75 * total))  # Recommenders: rank / n <= ratio
        assert per_user[user] == expected, user
        assert abs(per_user[user] - 0.75 * total) < 1 or total == 1


def test_stratified_same_seed_same_split() -> None:
    first, _ = stratified_split(RATINGS, seed=7)
    second, _ = stratified_split(RATINGS.copy(), seed=7)
    pd.testing.assert_frame_equal(first, second)


def test_stratified_different_seed_different_split() -> None:
    first, _ = stratified_split(RATINGS, seed=1)
    second, _ = stratified_split(RATINGS, seed=2)
    assert len(first) == len(second)
    assert not first.index.equals(second.index)


def test_stratified_matches_recommenders_protocol() -> None:
    # Recommenders' _do_stratification, restated: global seed, one draw per row,
    # sort by (user, draw), train iff rank / count <= ratio.
    data = RATINGS.copy()
    data["random"] = np.random.RandomState(42).rand(len(data))
    data = data.sort_values(["user_id", "random"])
    groups = data.groupby("user_id")
    fraction = (groups.cumcount() + 1) / groups["user_id"].transform("count")
    expected_train = set(data.index[fraction <= 0.75])
    expected_train |= {data.index[data["user_id"] == 4][0]}  # our one difference: keep a row
    train, _ = stratified_split(RATINGS, ratio=0.75, seed=42)
    assert set(train.index) == expected_train


def test_stratified_rejects_bad_ratio() -> None:
    with pytest.raises(DatasetError, match="ratio"):
        stratified_split(RATINGS, ratio=1.0)


def test_leave_last_n_out_takes_latest() -> None:
    ratings = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "movie_id": [10, 11, 12, 10, 11, 10],
            "rating": np.ones(6, dtype="float32"),
            "timestamp": [300, 100, 200, 50, 60, 5],
        }
    )
    train, test = leave_last_n_out(ratings, n=1)
    assert_partition(ratings, train, test)
    assert sorted(zip(test["user_id"], test["timestamp"], strict=True)) == [(1, 300), (2, 60)]
    # user 3 has one rating: it stays in train
    assert list(train.loc[train["user_id"] == 3, "timestamp"]) == [5]


def test_leave_last_n_out_breaks_ties_by_movie_id() -> None:
    ratings = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1],
            "movie_id": [30, 10, 20, 40],
            "rating": np.ones(4, dtype="float32"),
            "timestamp": [100, 500, 500, 50],
        }
    )
    _, test = leave_last_n_out(ratings, n=2)
    assert list(test["movie_id"]) == [10, 20]  # both at t=500
    _, test_one = leave_last_n_out(ratings, n=1)
    assert list(test_one["movie_id"]) == [20]  # tie at t=500: higher movie id is "later"


def test_leave_last_n_out_keeps_one_train_row() -> None:
    train, test = leave_last_n_out(RATINGS, n=5)
    assert_partition(RATINGS, train, test)
    sizes = test.groupby("user_id").size().to_dict()
    totals = RATINGS.groupby("user_id").size()
    for user, total in totals.to_dict().items():
        assert sizes.get(user, 0) == min(5, total - 1)
    latest = RATINGS.sort_values(["timestamp", "movie_id"]).groupby("user_id").tail(5)
    big = totals[totals > 5].index
    assert set(test.index[test["user_id"].isin(big)]) == set(
        latest.index[latest["user_id"].isin(big)]
    )


def test_leave_last_n_out_rejects_bad_n() -> None:
    with pytest.raises(DatasetError, match="n >= 1"):
        leave_last_n_out(RATINGS, n=0)


def test_temporal_share_holds_out_the_latest_share_at_least_min_test() -> None:
    train, test = temporal_share_split(RATINGS, test_share=0.2, min_test=2)
    assert_partition(RATINGS, train, test)
    sizes = test.groupby("user_id").size().to_dict()
    # n ratings -> max(2, floor(0.2 n)), leaving at least one in train
    expected = {1: 4, 2: 2, 3: 2, 4: 0, 5: 1, 6: 6, 7: 20}
    assert {u: sizes.get(u, 0) for u in expected} == expected
    for user, rows in test.groupby("user_id"):
        kept = train[train["user_id"] == user]
        assert kept["timestamp"].max() <= rows["timestamp"].min()  # test is the latest


def test_temporal_share_orders_like_leave_last_n_out() -> None:
    ratings = pd.DataFrame(
        {
            "user_id": [1] * 5,
            "movie_id": [30, 10, 20, 40, 50],
            "rating": np.ones(5, dtype="float32"),
            "timestamp": [100, 500, 500, 50, 70],
        }
    )
    _, test = temporal_share_split(ratings, test_share=0.5, min_test=1)
    # floor(0.5 * 5) = 2: the two at t=500 (ties broken by movie id)
    assert sorted(test["movie_id"]) == [10, 20]
    _, last_two = leave_last_n_out(ratings, n=2)
    assert sorted(last_two["movie_id"]) == [10, 20]


def test_temporal_share_rejects_bad_arguments() -> None:
    with pytest.raises(DatasetError, match="test share"):
        temporal_share_split(RATINGS, test_share=1.0)
    with pytest.raises(DatasetError, match="min_test"):
        temporal_share_split(RATINGS, min_test=0)


def test_splits_of_empty_ratings_are_empty() -> None:
    empty = RATINGS.iloc[:0]
    for train, test in (
        stratified_split(empty),
        leave_last_n_out(empty),
        temporal_share_split(empty),
    ):
        assert train.empty
        assert test.empty
