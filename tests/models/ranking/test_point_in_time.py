"""Point in time: no training example ever sees a rating at or after its own time.

A hand-made history over six weeks, the real snapshot code (`build_feature_tables`), the
real Feast definitions and `get_historical_features` (through `point_in_time_features`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.features import build_feature_tables, write_sources
from models.ranking.build import fit_part_feature_sources
from models.ranking.config import RankerConfig
from models.ranking.dataset import build_input_rows, labeled_rows
from models.ranking.features import offline_store, point_in_time_features
from models.ranking.inputs import input_spec
from movierec.candidates import merge_candidates

DAY = 86_400
WEEK = 7 * DAY
BASE = 2_900 * WEEK  # a multiple of the weekly cadence


def _tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    rows = []
    for user in (1, 2, 3, 4):
        # every user rates over several weeks, several ratings a day
        times: np.ndarray = BASE + np.sort(rng.integers(0, 6 * WEEK, size=14))
        picks = rng.choice(np.arange(1, 21), size=14, replace=False)
        for movie, stamp in zip(picks, times, strict=True):
            rows.append((user, int(movie), float(rng.integers(1, 6)), int(stamp)))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"]).astype(
        {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}
    )
    movies = pd.DataFrame(
        {
            "movie_id": pd.Series(range(1, 21), dtype="int64"),
            "title": [f"Movie {i}" for i in range(1, 21)],
            "year": pd.array([1980 + i for i in range(20)], dtype="Int64"),
            "genres": [["Drama"] if i % 2 else ["Comedy", "Action"] for i in range(20)],
        }
    )
    users = pd.DataFrame(
        {
            "user_id": pd.Series([1, 2, 3, 4], dtype="int64"),
            "age": [20, 30, 40, 50],
            "gender": ["F", "M", "F", "M"],
            "occupation": ["student", "writer", "artist", "other"],
            "zip_code": ["1", "2", "3", "4"],
        }
    )
    return ratings, movies, users


def _counts_before(ratings: pd.DataFrame, key: str, ids: pd.Series, times: pd.Series) -> np.ndarray:
    by_key = {k: np.sort(g["timestamp"].to_numpy()) for k, g in ratings.groupby(key)}
    return np.array(
        [
            np.searchsorted(by_key.get(k, np.array([])), t, side="left")
            for k, t in zip(ids, times, strict=True)
        ]
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    ratings, movies, users = _tables()
    train = ratings
    label = ratings.groupby("user_id").tail(4)  # each user's 4 latest ratings are labels
    fit = ratings.drop(label.index)
    work = tmp_path_factory.mktemp("pit")
    write_sources(build_feature_tables(train, movies, users), work / "features")
    store = offline_store(work / "features", work / "registry")
    # candidates: every movie the user did not rate in the fit part
    candidates = {}
    for user, group in fit.groupby("user_id"):
        unseen = [m for m in range(1, 21) if m not in set(group["movie_id"])]
        candidates[int(str(user))] = merge_candidates({"retrieval": [(m, 1.0) for m in unseen]})
    rows = labeled_rows(candidates, label, seed=0)
    return {
        "ratings": ratings,
        "fit": fit,
        "label": label,
        "movies": movies,
        "users": users,
        "store": store,
        "rows": rows,
        "candidates": candidates,
        "work": work,
    }


def test_examples_are_stamped_at_label_times(setup: dict) -> None:
    rows: pd.DataFrame = setup["rows"]
    label: pd.DataFrame = setup["label"]
    assert rows["label"].sum() == len(label)  # every label movie is a candidate here
    positives = rows[rows["label"] == 1].merge(label, on=["user_id", "movie_id"])
    assert (positives["timestamp_x"] == positives["timestamp_y"]).all()
    label_times = label.groupby("user_id")["timestamp"].apply(set)
    negatives = rows[rows["label"] == 0]
    assert all(
        t in label_times[u]
        for u, t in zip(negatives["user_id"], negatives["timestamp"], strict=True)
    )


def test_no_feature_counts_a_rating_at_or_after_the_example(setup: dict) -> None:
    ratings: pd.DataFrame = setup["ratings"]
    frame = point_in_time_features(setup["store"], setup["rows"])
    assert len(frame) == len(setup["rows"])
    times = frame["timestamp"]
    movie_before = _counts_before(ratings, "movie_id", frame["movie_id"], times)
    user_before = _counts_before(ratings, "user_id", frame["user_id"], times)
    movie_count = frame["movie_rating_count"].fillna(0).to_numpy()
    user_count = frame["user_rating_count"].fillna(0).to_numpy()
    assert (movie_count <= movie_before).all()
    assert (user_count <= user_before).all()
    # ...and the features are the newest snapshot before the example, not an older one:
    # weekly snapshots, so at most a week of ratings is missing.
    week_before = _counts_before(ratings, "movie_id", frame["movie_id"], times - WEEK)
    assert (movie_count >= week_before).all()
    # The value is the one of the newest source row dated at or before the example.
    sources = pd.read_parquet(setup["work"] / "features" / "movie_features.parquet")
    sources = sources.sort_values("event_timestamp")
    asked = frame[["movie_id"]].assign(
        event_timestamp=pd.to_datetime(times, unit="s", utc=True).astype(
            sources["event_timestamp"].dtype
        ),
        order=np.arange(len(frame)),
    )
    expected = pd.merge_asof(
        asked.sort_values("event_timestamp"),
        sources.rename(columns={"event_timestamp": "snapshot"}),
        left_on="event_timestamp",
        right_on="snapshot",
        by="movie_id",
        direction="backward",
    ).sort_values("order")
    assert (
        expected["snapshot"].isna() | (expected["snapshot"] <= expected["event_timestamp"])
    ).all()
    np.testing.assert_array_equal(movie_count, expected["movie_rating_count"].fillna(0).to_numpy())
    # A positive's own rating is never in its features.
    positives = frame[frame["label"] == 1]
    own_before = _counts_before(ratings, "movie_id", positives["movie_id"], positives["timestamp"])
    assert (positives["movie_rating_count"].fillna(0).to_numpy() <= own_before).all()


def test_rows_of_one_user_at_different_times_get_their_own_user_features(setup: dict) -> None:
    frame = point_in_time_features(setup["store"], setup["rows"])
    spec = input_spec(RankerConfig(features=("in_retrieval", "user_log_count")))
    built = build_input_rows(spec, frame, setup["candidates"])
    got = built.arrays["user_rating_count"]
    expected = built.frame["user_rating_count"].fillna(0).to_numpy(np.int64)
    np.testing.assert_array_equal(got, expected)
    per_user = built.frame.groupby("user_id")["user_rating_count"].nunique(dropna=False)
    assert (per_user > 1).any()  # the case is real: several feature times per user


def test_fit_end_features_never_see_a_label_rating(setup: dict, tmp_path: Path) -> None:
    fit: pd.DataFrame = setup["fit"]
    source_dir, stamp = fit_part_feature_sources(
        fit,
        type("D", (), {"movies": setup["movies"], "users": setup["users"]})(),
        tmp_path / "fit",
    )
    assert stamp > fit["timestamp"].max()
    store = offline_store(source_dir, tmp_path / "registry")
    rows = setup["rows"].assign(timestamp=stamp)
    frame = point_in_time_features(store, rows)
    fit_movie = fit.groupby("movie_id").size()
    fit_user = fit.groupby("user_id").size()
    np.testing.assert_array_equal(
        frame["movie_rating_count"].fillna(0).to_numpy(),
        frame["movie_id"].map(fit_movie).fillna(0).to_numpy(),
    )
    np.testing.assert_array_equal(
        frame["user_rating_count"].to_numpy(), frame["user_id"].map(fit_user).to_numpy()
    )
