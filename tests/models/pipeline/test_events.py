"""Folding feedback events into the training ratings: pure logic, hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.pipeline.events import FoldConfig, events_digest, fold_events

T0 = 1_764_000_000  # 2025-11-24, long after ml-100k's ratings


def _ratings(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    return frame.astype({"user_id": "int64", "movie_id": "int64", "rating": "float32"})


def _events(rows: list[tuple[int, int, str, float | None, int]]) -> pd.DataFrame:
    """(user, movie, type, value, epoch seconds) in log order; entry ids 1-0, 2-0, ..."""
    return pd.DataFrame(
        {
            "entry_id": [f"{i + 1}-0" for i in range(len(rows))],
            "user_id": [r[0] for r in rows],
            "movie_id": [r[1] for r in rows],
            "type": [r[2] for r in rows],
            "value": [r[3] for r in rows],
            "event_timestamp": pd.to_datetime([r[4] for r in rows], unit="s", utc=True),
        }
    )


DATASET = _ratings([(1, 10, 5.0, 100), (1, 11, 2.0, 101), (2, 10, 4.0, 102)])


def test_each_event_type_folds_by_its_meaning() -> None:
    events = _events(
        [
            (1, 11, "rating", 4.5, T0 + 1),  # replaces the dataset's 2.0 ...
            (1, 11, "rating", 3.5, T0 + 2),  # ... and the later rating wins
            (1, 12, "watch", None, T0 + 3),  # seen, not rated: watch_rating
            (1, 10, "watch", None, T0 + 4),  # already rated in the dataset: no change
            (2, 13, "click", None, T0 + 5),  # interest: click_rating
            (2, 14, "click", None, T0 + 6),
            (2, 14, "watch", None, T0 + 7),  # a watch beats a click
            (2, 10, "dismiss", None, T0 + 8),  # negative for good: replaces the 4.0 ...
            (2, 10, "rating", 5.0, T0 + 9),  # ... and a later rating does not undo it
            (3, 15, "impression", None, T0 + 10),  # not a training signal
            (3, 999, "rating", 5.0, T0 + 11),  # not in the catalog
        ]
    )
    folded = fold_events(DATASET, events, FoldConfig(), movie_ids=[10, 11, 12, 13, 14, 15])
    assert list(folded.itertuples(index=False, name=None)) == [
        (1, 10, 5.0, 100),
        (1, 11, 3.5, T0 + 2),
        (1, 12, 3.0, T0 + 3),
        (2, 13, 4.0, T0 + 5),
        (2, 14, 3.0, T0 + 7),
        (2, 10, 1.0, T0 + 8),
    ]
    assert folded.dtypes.to_dict() == DATASET.dtypes.to_dict()


def test_the_implicit_ratings_are_configurable_and_bounded() -> None:
    events = _events(
        [(5, 20, "watch", None, T0), (5, 21, "click", None, T0), (5, 22, "dismiss", None, T0)]
    )
    folded = fold_events(
        DATASET, events, FoldConfig(watch_rating=2.5, click_rating=5.0, dismiss_rating=0.5)
    )
    assert folded["rating"].tolist()[-3:] == [2.5, 5.0, 0.5]
    with pytest.raises(ValueError, match="watch_rating"):
        FoldConfig(watch_rating=6.0)


def test_no_events_or_nothing_to_fold_leave_the_ratings_as_they_are() -> None:
    empty = _events([])
    assert fold_events(DATASET, empty) is DATASET
    only_noise = _events(
        [(1, 10, "impression", None, T0), (1, 10, "watch", None, T0), (2, 10, "click", None, T0)]
    )
    assert fold_events(DATASET, only_noise) is DATASET


def test_event_time_becomes_the_rows_timestamp_in_whole_seconds() -> None:
    events = _events([(7, 30, "rating", 4.0, 0)])
    events["event_timestamp"] = pd.to_datetime(["2026-12-01T23:00:00.900Z"], utc=True)
    folded = fold_events(DATASET, events)
    row = folded.iloc[-1]
    assert int(row["timestamp"]) == int(pd.Timestamp("2026-12-01T23:00:00Z").timestamp())
    assert row["rating"] == np.float32(4.0)


def test_a_client_clock_ahead_of_the_server_is_capped_at_the_time_received() -> None:
    events = _events([(7, 30, "rating", 4.0, T0 + 3600), (7, 31, "rating", 4.0, T0 - 60)])
    events["received"] = pd.to_datetime([T0, T0], unit="s", utc=True)
    folded = fold_events(DATASET, events)
    assert folded["timestamp"].tolist()[-2:] == [T0, T0 - 60]


def test_the_digest_follows_the_events() -> None:
    one = _events([(1, 10, "rating", 4.0, T0)])
    two = _events([(1, 10, "rating", 4.0, T0), (1, 11, "watch", None, T0)])
    assert events_digest(_events([])) == ""
    assert events_digest(one) == events_digest(one.copy())
    assert events_digest(one) != events_digest(two)
