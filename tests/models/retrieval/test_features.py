"""Feature arrays built from the normalized tables (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.retrieval.features import build_history, build_movie_table, build_user_table


def test_movie_table_pads_genres_and_fills_unknown_year() -> None:
    movies = pd.DataFrame(
        {
            "movie_id": [5, 2],
            "title": ["B", None],
            "year": pd.array([pd.NA, 1995], dtype="Int64"),
            "genres": [["Drama", "Comedy"], []],
        }
    )
    table = build_movie_table(movies)
    assert table.movie_id.tolist() == [2, 5]  # sorted by id
    assert table.title.tolist() == ["", "B"]
    assert table.year.tolist() == [1995, 0]
    assert table.genres.tolist() == [["", ""], ["Drama", "Comedy"]]
    assert set(table.as_features()) == {"movie_id", "title", "genres", "year"}


def test_user_table_with_and_without_users() -> None:
    ratings = pd.DataFrame({"user_id": [3, 1, 3], "movie_id": [1, 2, 3]})
    users = pd.DataFrame(
        {
            "user_id": [1, 3, 4],
            "age": [20, 30, 40],
            "gender": ["F", "M", "F"],
            "occupation": ["a", "b", "c"],
            "zip_code": ["111", "222", "333"],
        }
    )
    table = build_user_table(users, ratings)
    assert table.user_id.tolist() == [1, 3]  # users of the ratings only
    rows = table.rows(np.array([3, 99]))
    assert rows["user_id"].tolist() == [3, 99]
    assert rows["age"].tolist() == [30, 0]  # unknown user -> unknown values
    assert rows["gender"].tolist() == ["M", ""]
    assert rows["zip_code"].tolist() == ["222", ""]

    bare = build_user_table(None, ratings)
    assert bare.features == {}
    assert set(bare.rows(np.array([1]))) == {"user_id"}
    assert build_user_table(users, ratings, use_features=False).features == {}


def test_history_keeps_most_recent_positions() -> None:
    ratings = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 1],
            "movie_id": [10, 30, 20, 10, 999],  # 999 is not in the catalog: dropped
            "timestamp": [5, 1, 3, 7, 9],
        }
    )
    history = build_history(ratings, np.array([1, 2, 3]), np.array([10, 20, 30]), max_len=2)
    # Positions are 1-based: 10 -> 1, 20 -> 2, 30 -> 3. User 1 by time: 30, 20, 10 -> last 2.
    assert history.tolist() == [[2, 1], [1, 0], [0, 0]]
