"""Snapshot tables: hand-computed values, point-in-time cut-offs, a brute-force reference."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.features import (
    GENRES,
    SCHEMAS,
    SnapshotConfig,
    build_feature_tables,
    canonical_genres,
    snapshot_times,
)
from tests.models.features import _tiny
from tests.models.features._tiny import DAY, S1, S2, B

TS = "event_timestamp"


def _seconds(table: pa.Table) -> list[int]:
    return [int(x.timestamp()) for x in table.column(TS).to_pylist()]


def _rows(table: pa.Table, key: str) -> dict[tuple[int, int], dict]:
    return {(row[key], int(row[TS].timestamp())): row for row in table.to_pylist()}


@pytest.fixture(scope="module")
def tiny():
    return build_feature_tables(_tiny.ratings(), _tiny.movies(), _tiny.users(), _tiny.CONFIG)


def test_snapshot_times_of_the_tiny_table(tiny):
    assert tiny.snapshot_times.tolist() == [S1, S2]
    assert tiny.first_snapshot == pd.Timestamp(S1, unit="s", tz="UTC")
    assert tiny.last_snapshot == pd.Timestamp(S2, unit="s", tz="UTC")


def test_schemas(tiny):
    for name, table in tiny.tables().items():
        assert table.schema == SCHEMAS[name], name


def test_movie_features_by_hand(tiny):
    rows = _rows(tiny.movie_features, "movie_id")
    expected = {
        (movie, snap): values
        for movie, by_snap in _tiny.MOVIE_AT.items()
        for snap, values in by_snap.items()
    }
    assert set(rows) == set(expected)
    for key, (count, mean, recent, pct) in expected.items():
        row = rows[key]
        assert row["movie_rating_count"] == count, key
        if mean is None:
            assert row["movie_rating_mean"] is None
        else:
            assert row["movie_rating_mean"] == pytest.approx(mean, rel=1e-6), key
        assert row["movie_recent_rating_count"] == recent, key
        assert row["movie_popularity_pct"] == pytest.approx(pct), key


def test_movie_metadata_by_hand(tiny):
    rows = {row["movie_id"]: row for row in tiny.movie_metadata.to_pylist()}
    assert set(rows) == set(_tiny.MOVIE_METADATA)
    for movie, (stamp, genres, vector, year) in _tiny.MOVIE_METADATA.items():
        row = rows[movie]
        assert int(row[TS].timestamp()) == stamp
        assert row["movie_genres"] == genres
        assert row["movie_genre_vector"] == pytest.approx(vector)
        assert row["movie_year"] == year


def test_user_features_and_history_by_hand(tiny):
    features = _rows(tiny.user_features, "user_id")
    history = _rows(tiny.user_history, "user_id")
    expected = {
        (user, snap): values
        for user, by_snap in _tiny.USER_AT.items()
        for snap, values in by_snap.items()
    }
    # change-only: user 3 rated nothing before S1, so it has no S1 row
    assert set(features) == set(expected) == set(history)
    for key, (count, mean, affinity, liked, seen) in expected.items():
        assert features[key]["user_rating_count"] == count, key
        assert features[key]["user_rating_mean"] == pytest.approx(mean), key
        assert features[key]["user_genre_affinity"] == pytest.approx(affinity, abs=1e-6), key
        assert history[key]["liked_movie_ids"] == liked, key
        assert history[key]["seen_movie_ids"] == seen, key


def test_demographics_by_hand(tiny):
    rows = {row["user_id"]: row for row in tiny.user_demographics.to_pylist()}
    assert set(rows) == set(_tiny.DEMOGRAPHICS)
    for user, (stamp, age, gender, occupation) in _tiny.DEMOGRAPHICS.items():
        assert int(rows[user][TS].timestamp()) == stamp
        assert (rows[user]["user_age"], rows[user]["user_gender"]) == (age, gender)
        assert rows[user]["user_occupation"] == occupation


def test_no_users_table_gives_empty_demographics():
    tables = build_feature_tables(_tiny.ratings(), _tiny.movies(), None, _tiny.CONFIG)
    assert tables.user_demographics.num_rows == 0
    assert tables.user_demographics.schema == SCHEMAS["user_demographics"]
    assert tables.user_features.num_rows == 5


def test_a_rating_at_the_snapshot_time_is_not_counted_in_it():
    ratings = _tiny.ratings()
    # A rating exactly at S1 (a cadence multiple) must wait for the next snapshot.
    extra = pd.DataFrame(
        {"user_id": [3], "movie_id": [3], "rating": [5.0], "timestamp": [S1]}
    ).astype(ratings.dtypes.to_dict())
    tables = build_feature_tables(
        pd.concat([ratings, extra], ignore_index=True), _tiny.movies(), None, _tiny.CONFIG
    )
    movies = _rows(tables.movie_features, "movie_id")
    assert (3, S1) not in movies  # movie 3's only S1-time rating is not before S1
    assert movies[(3, S2)]["movie_rating_count"] == 2
    users = _rows(tables.user_features, "user_id")
    assert (3, S1) not in users
    assert users[(3, S2)]["user_rating_count"] == 3


def test_liked_ids_are_best_rated_then_most_recent_and_capped():
    ratings = pd.DataFrame(
        {
            "user_id": [7] * 6,
            "movie_id": [10, 11, 12, 13, 14, 15],
            "rating": [4.0, 5.0, 4.5, 5.0, 3.5, 4.0],
            "timestamp": [B + i * 60 for i in range(6)],
        }
    ).astype({"rating": "float32"})
    movies = pd.DataFrame(
        {"movie_id": range(10, 16), "title": "x", "year": 2000, "genres": [[]] * 6}
    )
    config = SnapshotConfig(like_threshold=4.0, top_liked_k=4)
    history = build_feature_tables(ratings, movies, None, config).user_history.to_pylist()
    assert len(history) == 1
    assert history[0]["liked_movie_ids"] == [13, 11, 12, 15]
    assert history[0]["seen_movie_ids"] == [10, 11, 12, 13, 14, 15]


def test_snapshot_times_rules():
    config = SnapshotConfig(cadence=timedelta(days=7), max_snapshots=200)
    ts = np.array([B + 5, B + 30 * DAY + 17])
    snaps = snapshot_times(ts, config)
    assert snaps[-1] == ts.max() + 1
    assert snaps[0] > ts.min()
    assert all(s % (7 * DAY) == 0 for s in snaps[:-1])
    assert np.all(np.diff(snaps) > 0)
    # a long range is coarsened to whole days and bounded by max_snapshots
    long_ts = np.arange(B - 20 * 365 * DAY, B, DAY)  # a rating every day for 20 years
    coarse = snapshot_times(long_ts, SnapshotConfig(max_snapshots=50))
    assert 40 <= len(coarse) <= 50
    steps = np.diff(coarse[:-1])
    assert len(set(steps.tolist())) == 1 and steps[0] % DAY == 0
    # periods without a rating get no snapshot: a burst 20 years later adds one, and the
    # dense period keeps its weekly cadence
    weekly = np.arange(B, B + 20 * 7 * DAY, DAY)
    late = np.append(weekly, [B + 20 * 365 * DAY])
    snaps = snapshot_times(late, config)
    assert np.array_equal(snaps[:-2], snapshot_times(weekly, config)[:-1])
    assert len(snaps) == len(snapshot_times(weekly, config)) + 1
    with pytest.raises(ValueError):
        snapshot_times(np.array([], dtype=np.int64), config)


def test_canonical_genres():
    assert canonical_genres(["Children's", "Comedy", "Comedy", "unknown"]) == [
        "Children",
        "Comedy",
    ]
    assert canonical_genres(["(no genres listed)"]) == []
    assert len(GENRES) == len(set(GENRES)) == 19


# --- brute force ------------------------------------------------------------------------------


def _random_tables(seed: int):
    rng = np.random.default_rng(seed)
    n = 700
    genres_pool = [*GENRES[:6], "Children's", "(no genres listed)", "Unlisted"]
    movies = pd.DataFrame(
        {
            "movie_id": np.arange(1, 41, dtype=np.int64) * 3,
            "title": "t",
            "year": pd.array([None if i % 7 == 0 else 1950 + i for i in range(40)], dtype="Int64"),
            "genres": [
                list(rng.choice(genres_pool, size=rng.integers(0, 4), replace=False))
                for _ in range(40)
            ],
        }
    )
    ratings = pd.DataFrame(
        {
            "user_id": rng.integers(1, 50, size=n),
            # a few ids missing from the catalog
            "movie_id": rng.choice(np.append(movies.movie_id.to_numpy()[:35], [1000, 1001]), n),
            "rating": rng.choice(np.arange(1, 11) / 2, size=n).astype(np.float32),
            # bursts on a coarse grid so that many ratings share a second and hit cut-offs
            "timestamp": B + rng.integers(0, 90, size=n) * (DAY // 3),
        }
    )
    return ratings, movies


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed):
    ratings, movies = _random_tables(seed)
    config = SnapshotConfig(
        cadence=timedelta(days=3), recent_window=timedelta(days=4), top_liked_k=5
    )
    tables = build_feature_tables(ratings, movies, None, config)
    snaps = tables.snapshot_times
    genre_of = {
        m: [g for g in canonical_genres(gs) if g in GENRES]
        for m, gs in zip(movies.movie_id, movies.genres, strict=True)
    }
    got_movies = _rows(tables.movie_features, "movie_id")
    got_users = _rows(tables.user_features, "user_id")
    got_history = _rows(tables.user_history, "user_id")
    catalog = set(movies.movie_id)
    all_movies = catalog | set(ratings.movie_id)
    window = 4 * DAY

    expected_movie_keys, expected_user_keys = set(), set()
    prev = None
    for j, t in enumerate(snaps):
        seen = ratings[ratings.timestamp < t]  # strictly before the snapshot
        counts = seen.groupby("movie_id").size()
        rated = counts[counts > 0]
        for m in all_movies:
            count = int(counts.get(m, 0))
            if count == 0 and not (j == len(snaps) - 1 and m in catalog):
                continue
            expected_movie_keys.add((m, t))
            row = got_movies[(m, t)]
            assert row["movie_rating_count"] == count
            if count:
                mean = seen[seen.movie_id == m].rating.astype(float).mean()
                assert row["movie_rating_mean"] == pytest.approx(mean, rel=1e-5)
                assert row["movie_popularity_pct"] == pytest.approx(
                    (rated <= count).sum() / len(rated), rel=1e-6
                )
            else:
                assert row["movie_rating_mean"] is None
                assert row["movie_popularity_pct"] == 0
            recent = seen[(seen.movie_id == m) & (seen.timestamp >= t - window)]
            assert row["movie_recent_rating_count"] == len(recent)

        new = ratings[(ratings.timestamp < t) & (prev is None or ratings.timestamp >= prev)]
        for u in set(new.user_id):
            expected_user_keys.add((u, t))
            mine = seen[seen.user_id == u].sort_values(["timestamp", "movie_id"], kind="stable")
            row = got_users[(u, t)]
            assert row["user_rating_count"] == len(mine)
            assert row["user_rating_mean"] == pytest.approx(mine.rating.astype(float).mean())
            tags = np.zeros(len(GENRES))
            for m in mine.movie_id:
                for g in genre_of.get(m, []):
                    tags[GENRES.index(g)] += 1
            share = tags / tags.sum() if tags.sum() else tags
            assert row["user_genre_affinity"] == pytest.approx(share.tolist(), abs=1e-6)
            hist = got_history[(u, t)]
            assert hist["seen_movie_ids"] == mine.movie_id.tolist()
            liked = mine[mine.rating >= 4.0].sort_values(
                ["rating", "timestamp", "movie_id"], ascending=[False, False, True]
            )
            assert hist["liked_movie_ids"] == liked.movie_id.tolist()[:5]
        prev = t
    assert set(got_movies) == expected_movie_keys
    assert set(got_users) == expected_user_keys == set(got_history)
