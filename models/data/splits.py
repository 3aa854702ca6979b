"""Deterministic train/test splits of a ratings table.

Every splitter returns row subsets of the input: the input's index labels and row order are
kept, every row lands in exactly one of (train, test), and every user keeps at least one
train row, so `pd.concat([train, test]).sort_index()` equals the input.

`stratified_split` follows `python_stratified_split` of Microsoft Recommenders
(`recommenders/datasets/python_splitters.py`, `_do_stratification`): the global NumPy RNG
seeded with `seed` draws one uniform number per row (`np.random.seed(seed);
np.random.rand(n)`, reproduced here with `np.random.RandomState(seed)` so global state is
untouched), rows are sorted by (user, number), and a user's row with rank k of n goes to
train iff k / n <= ratio. For the same input rows in the same order, the train and test
row sets are identical to Recommenders'. Differences:

* A user whose ratings are all in test under that rule (fewer than 1 / ratio ratings, e.g.
  a single rating at ratio 0.75) keeps the first-ranked row in train; Recommenders would
  leave that user out of train. MovieLens users have 20+ ratings, so this never triggers
  there.
* Test is the exact complement of train (Recommenders selects k / n <= ratio + (1 - ratio),
  which can drop rows when that float sum rounds below 1).
* Rows keep the input order; Recommenders returns them sorted by (user, random number).
* There is no `min_rating` filter and no item-stratified mode.

Note that a user with n ratings gets floor(ratio * n) train rows (up to float rounding of
k / n), not round(ratio * n).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from models.data.errors import DatasetError

REQUIRED_COLUMNS = ("user_id", "movie_id", "timestamp")


def stratified_split(
    ratings: pd.DataFrame, ratio: float = 0.75, seed: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits each user's ratings at random, `ratio` of them into train.

    Args:
        ratings: Ratings with at least a `user_id` column.
        ratio: Fraction of each user's ratings that goes to train, in (0, 1).
        seed: Seed of the per-row random numbers; the same seed gives the same split.

    Returns:
        (train, test), row subsets of `ratings` in input order.

    Raises:
        DatasetError: `ratio` is outside (0, 1) or `user_id` is missing.
    """
    if not 0.0 < ratio < 1.0:
        raise DatasetError(f"split ratio must be between 0 and 1 (exclusive), got {ratio!r}")
    _require(ratings, ("user_id",))
    users = ratings["user_id"].to_numpy()
    draws = np.random.RandomState(seed).rand(len(ratings))  # as Recommenders draws them
    order = np.lexsort((draws, users))  # by user, then by random draw
    rank, count = _rank_within_user(users[order])
    train_sorted = rank / count <= ratio
    train_sorted |= (rank == 1) & ~_any_per_user(users[order], train_sorted)
    in_train = np.empty(len(ratings), dtype=bool)
    in_train[order] = train_sorted
    return ratings.loc[in_train], ratings.loc[~in_train]


def leave_last_n_out(ratings: pd.DataFrame, n: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Holds out each user's `n` most recent ratings as test.

    Ratings are ordered by timestamp; ties are broken by `movie_id`, then by input
    position, so the split is deterministic. A user with n or fewer ratings keeps the
    oldest one in train and the rest go to test.

    Args:
        ratings: Ratings with `user_id`, `movie_id` and `timestamp` columns.
        n: Ratings per user to hold out, at least 1.

    Returns:
        (train, test), row subsets of `ratings` in input order.

    Raises:
        DatasetError: `n` is below 1 or a required column is missing.
    """
    if n < 1:
        raise DatasetError(f"leave-last-n-out needs n >= 1, got {n!r}")
    return _hold_out_latest(ratings, lambda count: np.minimum(n, count - 1))


def temporal_share_split(
    ratings: pd.DataFrame, test_share: float = 0.2, min_test: int = 2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Holds out each user's most recent ratings: floor(test_share * n) of a user's n ratings,
    at least `min_test`, and always leaving the oldest one in train.

    The order is `leave_last_n_out`'s (timestamp, then `movie_id`, then input position).

    Args:
        ratings: Ratings with `user_id`, `movie_id` and `timestamp` columns.
        test_share: Share of each user's ratings held out, in (0, 1).
        min_test: Held-out ratings per user at least (a user with n <= min_test ratings
            holds out n - 1), at least 1.

    Returns:
        (train, test), row subsets of `ratings` in input order.

    Raises:
        DatasetError: `test_share` outside (0, 1), `min_test` below 1, or a required
            column is missing.
    """
    if not 0.0 < test_share < 1.0:
        raise DatasetError(f"test share must be between 0 and 1 (exclusive), got {test_share!r}")
    if min_test < 1:
        raise DatasetError(f"min_test must be >= 1, got {min_test!r}")

    def held_out(count: np.ndarray) -> np.ndarray:
        share = np.floor(test_share * count + 1e-9).astype(np.int64)
        return np.minimum(np.maximum(share, min_test), count - 1)

    return _hold_out_latest(ratings, held_out)


def _hold_out_latest(
    ratings: pd.DataFrame, held_out: Callable[[np.ndarray], np.ndarray]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): per user, the `held_out(count)` most recent rows are test."""
    _require(ratings, REQUIRED_COLUMNS)
    users = ratings["user_id"].to_numpy()
    position = np.arange(len(ratings))
    order = np.lexsort(
        (position, ratings["movie_id"].to_numpy(), ratings["timestamp"].to_numpy(), users)
    )
    rank, count = _rank_within_user(users[order])
    test_sorted = rank > count - held_out(count)
    in_test = np.empty(len(ratings), dtype=bool)
    in_test[order] = test_sorted
    return ratings.loc[~in_test], ratings.loc[in_test]


def _require(ratings: pd.DataFrame, columns: tuple[str, ...]) -> None:
    missing = [name for name in columns if name not in ratings.columns]
    if missing:
        raise DatasetError(f"ratings table lacks column(s) {', '.join(missing)}")


def _rank_within_user(sorted_users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-based rank of each row within its user's run, and the run's length, per row."""
    size = len(sorted_users)
    if size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    lengths = np.diff(np.r_[starts, size])
    start_of_row = np.repeat(starts, lengths)
    rank = np.arange(size, dtype=np.int64) - start_of_row + 1
    return rank, np.repeat(lengths, lengths).astype(np.int64)


def _any_per_user(sorted_users: np.ndarray, flags: np.ndarray) -> np.ndarray:
    """Per row: whether any row of the same user (in a user-sorted array) is flagged."""
    if len(sorted_users) == 0:
        return np.zeros(0, dtype=bool)
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    lengths = np.diff(np.r_[starts, len(sorted_users)])
    per_user = np.logical_or.reduceat(flags, starts)
    return np.repeat(per_user, lengths)
