"""Normalized MovieLens tables: the contract between the loaders and everything downstream.

Every variant (ml-100k, ml-1m, ml-latest-small, ml-25m) is normalized to these tables and
stored as parquet under `<data_dir>/<variant>/`.

ratings.parquet
    user_id   int64    MovieLens user id.
    movie_id  int64    MovieLens movie id.
    rating    float32  Explicit rating, 0.5..5 stars.
    timestamp int64    Seconds since the Unix epoch (UTC).
movies.parquet
    movie_id  int64
    title     string   Title without the trailing "(year)".
    year      Int64    Release year; <NA> where the title has none.
    genres    list<string>  Genre names; empty list for "(no genres listed)"/"unknown".
users.parquet (ml-100k and ml-1m only)
    user_id    int64
    age        int64    Age in years (ml-100k) or the ml-1m age bucket's lower bound.
    gender     string   "M" or "F".
    occupation string
    zip_code   string
tags.parquet (variants with tags only)
    user_id, movie_id int64; tag string; timestamp int64 (seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

RATINGS_COLUMNS = ("user_id", "movie_id", "rating", "timestamp")
MOVIES_COLUMNS = ("movie_id", "title", "year", "genres")
USERS_COLUMNS = ("user_id", "age", "gender", "occupation", "zip_code")
TAGS_COLUMNS = ("user_id", "movie_id", "tag", "timestamp")

TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ratings": RATINGS_COLUMNS,
    "movies": MOVIES_COLUMNS,
    "users": USERS_COLUMNS,
    "tags": TAGS_COLUMNS,
}


@dataclass(frozen=True)
class MovieLens:
    """One loaded variant. `users` and `tags` are None where the variant lacks them."""

    variant: str
    ratings: pd.DataFrame
    movies: pd.DataFrame
    users: pd.DataFrame | None = None
    tags: pd.DataFrame | None = None
