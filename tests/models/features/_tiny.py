"""A hand-written MovieLens-shaped dataset whose feature values are worked out by hand.

Times are offsets from B, a Thursday 00:00 UTC (a multiple of the 7-day cadence), so the
snapshots are S1 = B + 7 days (a cadence multiple) and S2 = B + 10 days + 1 s (one second
after the newest rating). With recent_window = 5 days:

rating  user movie stars  time     counted in
r1      1    1     5.0    B+1d     S1, S2
r2      1    2     3.0    B+2d     S1, S2
r3      2    1     4.0    B+3d     S1, S2
r4      1    3     4.0    B+8d     S2
r5      2    4     2.0    B+9d     S2
r6      3    2     5.0    B+10d    S2   (same second as r7)
r7      3    1     1.0    B+10d    S2

Movies: 1 Action|Comedy 1995; 2 Children's 1990; 3 Drama (no year); 4 no genre 2000;
5 Horror 1980 (never rated). Users 1-3 rated; user 4 is in the users table only.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from models.features import GENRES, SnapshotConfig

DAY = 86_400
WEEK = 7 * DAY
B = 2_900 * WEEK  # 2025-07-31 00:00 UTC, a cadence multiple
S1 = B + 7 * DAY
S2 = B + 10 * DAY + 1
CONFIG = SnapshotConfig(cadence=timedelta(days=7), recent_window=timedelta(days=5))


def ratings() -> pd.DataFrame:
    rows = [
        (1, 1, 5.0, B + 1 * DAY),
        (1, 2, 3.0, B + 2 * DAY),
        (2, 1, 4.0, B + 3 * DAY),
        (1, 3, 4.0, B + 8 * DAY),
        (2, 4, 2.0, B + 9 * DAY),
        (3, 2, 5.0, B + 10 * DAY),
        (3, 1, 1.0, B + 10 * DAY),
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    return frame.astype(
        {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}
    )


def movies() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "movie_id": pd.Series([1, 2, 3, 4, 5], dtype="int64"),
            "title": ["One", "Two", "Three", "Four", "Five"],
            "year": pd.array([1995, 1990, None, 2000, 1980], dtype="Int64"),
            "genres": [["Action", "Comedy"], ["Children's"], ["Drama"], [], ["Horror"]],
        }
    )


def users() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series([1, 2, 3, 4], dtype="int64"),
            "age": pd.Series([24, 30, 41, 19], dtype="int64"),
            "gender": ["M", "F", "M", "F"],
            "occupation": ["technician", "writer", "artist", "student"],
            "zip_code": ["85711", "94043", "32067", "10001"],
        }
    )


def genre_vector(*names: str, weight: float = 1.0) -> list[float]:
    vec = np.zeros(len(GENRES), dtype=np.float32)
    for name in names:
        vec[GENRES.index(name)] = weight
    return [float(x) for x in vec]


# user -> snapshot -> (count, mean, affinity, liked, seen)
USER_AT: dict[int, dict[int, tuple[int, float, list[float], list[int], list[int]]]] = {
    1: {
        S1: (2, 4.0, genre_vector("Action", "Comedy", "Children", weight=1 / 3), [1], [1, 2]),
        S2: (
            3,
            4.0,
            genre_vector("Action", "Comedy", "Children", "Drama", weight=1 / 4),
            [1, 3],
            [1, 2, 3],
        ),
    },
    2: {
        S1: (1, 4.0, genre_vector("Action", "Comedy", weight=1 / 2), [1], [1]),
        S2: (2, 3.0, genre_vector("Action", "Comedy", weight=1 / 2), [1], [1, 4]),
    },
    3: {S2: (2, 3.0, genre_vector("Action", "Comedy", "Children", weight=1 / 3), [2], [1, 2])},
}

# movie -> snapshot -> (count, mean, recent count, popularity pct)
MOVIE_AT: dict[int, dict[int, tuple[int, float | None, int, float]]] = {
    1: {S1: (2, 4.5, 1, 1.0), S2: (3, 10 / 3, 1, 1.0)},
    2: {S1: (1, 3.0, 1, 0.5), S2: (2, 4.0, 1, 0.75)},
    3: {S2: (1, 4.0, 1, 0.5)},
    4: {S2: (1, 2.0, 1, 0.5)},
    5: {S2: (0, None, 0, 0.0)},
}

# movie -> (first-rating stamp, genres, multi-hot, year)
MOVIE_METADATA: dict[int, tuple[int, list[str], list[float], int | None]] = {
    1: (B + 1 * DAY, ["Action", "Comedy"], genre_vector("Action", "Comedy"), 1995),
    2: (B + 2 * DAY, ["Children"], genre_vector("Children"), 1990),
    3: (B + 8 * DAY, ["Drama"], genre_vector("Drama"), None),
    4: (B + 9 * DAY, [], genre_vector(), 2000),
    5: (S2, ["Horror"], genre_vector("Horror"), 1980),
}

# user -> (stamp, age, gender, occupation)
DEMOGRAPHICS: dict[int, tuple[int, int, str, str]] = {
    1: (B + 1 * DAY, 24, "M", "technician"),
    2: (B + 3 * DAY, 30, "F", "writer"),
    3: (B + 10 * DAY, 41, "M", "artist"),
    4: (S2, 19, "F", "student"),
}


def expected_user(user: int, snap: int) -> dict:
    """The ranker's user features of `user` as of snapshot `snap`, by hand."""
    count, mean, affinity, _, _ = USER_AT[user][snap]
    _, age, gender, occupation = DEMOGRAPHICS[user]
    return {
        "user_rating_count": count,
        "user_rating_mean": mean,
        "user_genre_affinity": affinity,
        "user_age": age,
        "user_gender": gender,
        "user_occupation": occupation,
    }


def expected_movie(movie: int, snap: int) -> dict:
    """The ranker's movie features of `movie` as of snapshot `snap`, by hand."""
    count, mean, recent, pct = MOVIE_AT[movie][snap]
    _, genres, vector, year = MOVIE_METADATA[movie]
    return {
        "movie_rating_count": count,
        "movie_rating_mean": mean,
        "movie_recent_rating_count": recent,
        "movie_popularity_pct": pct,
        "movie_genres": genres,
        "movie_genre_vector": vector,
        "movie_year": year,
    }


def assert_row(actual: dict, expected: dict) -> None:
    """`actual` holds `expected` (floats approximately, sequences as lists)."""
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
