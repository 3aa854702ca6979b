"""Feast apply -> materialize -> historical reads and rebuilds, against a real Redis (the
online reads of the runtime: test_runtime.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.features import (
    OnlineFeatures,
    build_feature_store,
    get_training_features,
    open_store,
)
from tests.models.features import _tiny
from tests.models.features._tiny import DAY, S1, S2, B, assert_row, expected_movie, expected_user

pytestmark = pytest.mark.integration


def test_point_in_time_join(redis_url: str, built: Path):
    store = open_store(redis_url, built)
    between = B + 8 * DAY  # after S1, before S2
    entity_df = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 1, 2, 1],
            "movie_id": [1, 2, 1, 1, 1, 4, 3],
            "timestamp": [between, between, S1, S1 - 1, S2 + DAY, B + 2 * DAY, B],
            "label": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )
    out = get_training_features(store, entity_df)
    assert list(out.index) == list(entity_df.index)
    assert out["label"].tolist() == entity_df["label"].tolist()
    rows = out.to_dict("index")

    # rows 10 and 11 share (user, timestamp): Feast's dask store would collapse them
    for i, movie in ((10, 1), (11, 2)):
        assert_row(rows[i], {**expected_user(1, S1), **expected_movie(movie, S1)})
    # exactly at S1: that snapshot is joined (it only counts ratings before S1)
    assert_row(rows[12], {**expected_user(1, S1), **expected_movie(1, S1)})
    # one second before S1: no snapshot yet -> nulls; static rows are stamped earlier
    assert pd.isna(rows[13]["user_rating_count"]) and pd.isna(rows[13]["movie_rating_count"])
    assert rows[13]["user_age"] == 24 and list(rows[13]["movie_genres"]) == ["Action", "Comedy"]
    # after the last snapshot: the last snapshot
    assert_row(rows[14], {**expected_user(1, S2), **expected_movie(1, S2)})
    # movie 4's first rating is later than this row: nothing about it is known yet
    assert pd.isna(rows[15]["movie_rating_count"]) and pd.isna(rows[15]["movie_year"])
    assert rows[15]["user_rating_count"] is None or pd.isna(rows[15]["user_rating_count"])
    # before every row of the store: all features null, the row is still there
    feature_columns = [c for c in out.columns if c.startswith(("user_", "movie_"))]
    feature_columns = [c for c in feature_columns if c not in ("user_id", "movie_id")]
    assert all(
        v is None or (not hasattr(v, "__len__") and pd.isna(v))
        for v in (rows[16][c] for c in feature_columns)
    )


def test_rebuild_replaces_online_values(redis_url: str, tmp_path: Path):
    """A rebuild whose last snapshot is no newer still replaces what Redis serves."""
    redis_url = redis_url.rsplit("/", 1)[0] + "/1"  # own db: the other tests read db 0
    data_dir = tmp_path / "features"
    build_feature_store(
        _tiny.ratings(), _tiny.movies(), _tiny.users(),
        data_dir=data_dir, redis_url=redis_url, config=_tiny.CONFIG,
    )  # fmt: skip
    reader = OnlineFeatures.open(redis_url, data_dir / "registry.db")
    assert reader.get_user_features(1)["user_rating_count"] == 3
    fewer = _tiny.ratings()
    fewer = fewer[~((fewer.user_id == 1) & (fewer.movie_id == 3))]  # same newest rating
    report = build_feature_store(
        fewer, _tiny.movies(), _tiny.users(),
        data_dir=data_dir, redis_url=redis_url, config=_tiny.CONFIG,
    )  # fmt: skip
    assert report.last_snapshot == pd.Timestamp(S2, unit="s", tz="UTC")
    assert reader.get_user_features(1)["user_rating_count"] == 2
    assert reader.get_user_history(1)["seen_movie_ids"] == [1, 2]
    assert reader.get_movie_features([3])["movie_rating_count"] == [0]
