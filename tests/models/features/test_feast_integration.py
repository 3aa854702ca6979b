"""Feast apply -> materialize -> online and historical reads, against a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pandas as pd
import pytest

from models.features import (
    OnlineFeatures,
    build_feature_store,
    get_training_features,
    open_store,
    response_columns,
)
from tests.models.features import _tiny
from tests.models.features._tiny import DAY, S1, S2, B

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def built(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("features")
    build_feature_store(
        _tiny.ratings(),
        _tiny.movies(),
        _tiny.users(),
        data_dir=data_dir,
        redis_url=redis_url,
        config=_tiny.CONFIG,
    )
    return data_dir


@pytest.fixture(scope="module")
def reader(redis_url: str, built: Path) -> OnlineFeatures:
    return OnlineFeatures.open(redis_url, built / "registry.db")


def _expected_user(user: int, snap: int) -> dict:
    count, mean, affinity, _, _ = _tiny.USER_AT[user][snap]
    _, age, gender, occupation = _tiny.DEMOGRAPHICS[user]
    return {
        "user_rating_count": count,
        "user_rating_mean": mean,
        "user_genre_affinity": affinity,
        "user_age": age,
        "user_gender": gender,
        "user_occupation": occupation,
    }


def _expected_movie(movie: int, snap: int) -> dict:
    count, mean, recent, pct = _tiny.MOVIE_AT[movie][snap]
    _, genres, vector, year = _tiny.MOVIE_METADATA[movie]
    return {
        "movie_rating_count": count,
        "movie_rating_mean": mean,
        "movie_recent_rating_count": recent,
        "movie_popularity_pct": pct,
        "movie_genres": genres,
        "movie_genre_vector": vector,
        "movie_year": year,
    }


def _assert_row(actual: dict, expected: dict) -> None:
    assert set(expected) <= set(actual)
    for key, value in expected.items():
        got = actual[key]
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-6), key
        elif isinstance(value, list) and value and isinstance(value[0], float):
            assert list(got) == pytest.approx(value, abs=1e-6), key
        else:
            assert (list(got) if hasattr(got, "__len__") and not isinstance(got, str) else got) == (
                value
            ), key


def test_online_user_features_equal_the_last_snapshot(reader: OnlineFeatures):
    for user in (1, 2, 3):
        _assert_row(reader.get_user_features(user), _expected_user(user, S2))
    # user 4 never rated: demographics only
    four = reader.get_user_features(4)
    assert four["user_rating_count"] is None and four["user_age"] == 19
    assert all(v is None for v in reader.get_user_features(999).values())


def test_online_movie_features_equal_the_last_snapshot(reader: OnlineFeatures):
    ids = [3, 1, 5, 2, 4, 1]
    columns = reader.get_movie_features(ids)
    assert list(columns) == reader.movie_names
    for i, movie in enumerate(ids):
        _assert_row({k: v[i] for k, v in columns.items()}, _expected_movie(movie, S2))


def test_unknown_movie_falls_back_to_per_view_reads(reader: OnlineFeatures):
    columns = reader.get_movie_features([2, 424242])
    _assert_row({k: v[0] for k, v in columns.items()}, _expected_movie(2, S2))
    assert all(v[1] is None for v in columns.values())
    assert reader.get_movie_features([]) == {name: [] for name in reader.movie_names}


def test_precomputed_reads_equal_feast_to_dict(reader: OnlineFeatures):
    ids = [1, 2, 3, 4, 5]
    fast = reader.get_movie_features(ids)
    plain = reader.store.get_online_features(reader.movie_refs, [{"movie_id": m} for m in ids])
    assert fast == {k: v for k, v in plain.to_dict().items() if k != "movie_id"}
    user = reader.store.get_online_features(reader.user_refs, [{"user_id": 1}]).to_dict()
    assert reader.get_user_features(1) == {k: v[0] for k, v in user.items() if k != "user_id"}
    assert response_columns(
        reader.store.get_online_features(reader.user_refs, {"user_id": [1]}), skip=("user_id",)
    ) == {k: v for k, v in user.items() if k != "user_id"}


def test_async_reads_equal_sync(reader: OnlineFeatures):
    async def read():
        return (
            await reader.get_user_features_async(2),
            await reader.get_movie_features_async([4, 1, 777]),
            await reader.get_user_history_async(1),
        )

    user, movies, history = asyncio.run(read())
    assert user == reader.get_user_features(2)
    assert movies == reader.get_movie_features([4, 1, 777])
    assert history == reader.get_user_history(1)


def test_online_history(reader: OnlineFeatures):
    for user in (1, 2, 3):
        _, _, _, liked, seen = _tiny.USER_AT[user][S2]
        assert reader.get_user_history(user) == {"liked_movie_ids": liked, "seen_movie_ids": seen}
    assert reader.get_user_history(999) == {"liked_movie_ids": [], "seen_movie_ids": []}


def test_shared_reader_is_one_per_process(redis_url: str, built: Path):
    a = OnlineFeatures.shared(redis_url, built / "registry.db")
    assert OnlineFeatures.shared(redis_url, str(built / "registry.db")) is a


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
        _assert_row(rows[i], {**_expected_user(1, S1), **_expected_movie(movie, S1)})
    # exactly at S1: that snapshot is joined (it only counts ratings before S1)
    _assert_row(rows[12], {**_expected_user(1, S1), **_expected_movie(1, S1)})
    # one second before S1: no snapshot yet -> nulls; static rows are stamped earlier
    assert pd.isna(rows[13]["user_rating_count"]) and pd.isna(rows[13]["movie_rating_count"])
    assert rows[13]["user_age"] == 24 and list(rows[13]["movie_genres"]) == ["Action", "Comedy"]
    # after the last snapshot: the last snapshot
    _assert_row(rows[14], {**_expected_user(1, S2), **_expected_movie(1, S2)})
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


def test_reader_without_the_precomputed_service_reads_per_view(reader: OnlineFeatures):
    plain = OnlineFeatures(reader.store, movie_service=None)
    ids = [5, 4, 3, 2, 1, 31337]
    assert plain.get_movie_features(ids) == reader.get_movie_features(ids)
    missing = OnlineFeatures(reader.store, movie_service="no_such_service")
    assert missing.get_movie_features(ids) == reader.get_movie_features(ids)
