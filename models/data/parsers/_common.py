"""Checks and conversions shared by the layout parsers; errors name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.data.parsers._table import Columns, TextFormat, fail_at, read_table, show
from models.data.tables import RATING_MAX, RATING_MIN, build

GENDERS = frozenset({"M", "F"})


def first_bad(mask: pd.Series) -> int | None:
    """Returns the position of the first True in `mask`, or None."""
    positions = np.flatnonzero(mask.to_numpy())
    return int(positions[0]) if positions.size else None


def check_unique(path: Path, fmt: TextFormat, values: pd.Series, what: str) -> None:
    """Raises DatasetError at the first repeated value of `values`."""
    row = first_bad(values.duplicated())
    if row is not None:
        raise fail_at(path, fmt, row, f"duplicate {what} {show(values.iloc[row])}")


def seconds(path: Path, fmt: TextFormat, values: pd.Series) -> pd.Series:
    """Converts timestamps (int or integral float) to int64 seconds."""
    if values.dtype.kind == "f":
        row = first_bad(values != np.floor(values))
        if row is not None:
            raise fail_at(
                path, fmt, row, f"timestamp {show(values.iloc[row])} is not whole seconds"
            )
    return values.astype("int64")


RATING_COLUMNS: Columns = [
    ("user_id", "int"),
    ("movie_id", "int"),
    ("rating", "float"),
    ("timestamp", "int"),
]
"""user_id, movie_id, rating, timestamp: the column order of u.data, ratings.dat and ratings.csv."""


def read_ratings_table(path: Path, fmt: TextFormat) -> pd.DataFrame:
    """Reads a delimited user_id, movie_id, rating, timestamp file into the ratings table."""
    return ratings_frame(path, fmt, read_table(path, fmt, RATING_COLUMNS))


def ratings_frame(path: Path, fmt: TextFormat, raw: pd.DataFrame) -> pd.DataFrame:
    """Builds the ratings table from parsed columns user_id, movie_id, rating, timestamp."""
    rating = raw["rating"].astype("float64")
    row = first_bad(~rating.between(RATING_MIN, RATING_MAX))
    if row is not None:
        raise fail_at(
            path, fmt, row, f"rating {show(rating.iloc[row])} outside {RATING_MIN}..{RATING_MAX}"
        )
    return build(
        "ratings",
        {
            "user_id": raw["user_id"],
            "movie_id": raw["movie_id"],
            "rating": rating,
            "timestamp": seconds(path, fmt, raw["timestamp"]),
        },
    )


def movies_frame(
    path: Path,
    fmt: TextFormat,
    movie_ids: pd.Series,
    titles: list[str],
    years: list[int | None],
    genres: list[list[str]],
) -> pd.DataFrame:
    """Builds the movies table, rejecting repeated movie ids."""
    check_unique(path, fmt, movie_ids, "movie id")
    year_column = pd.array(years, dtype="Int64")
    return build(
        "movies", {"movie_id": movie_ids, "title": titles, "year": year_column, "genres": genres}
    )


def users_frame(path: Path, fmt: TextFormat, raw: pd.DataFrame) -> pd.DataFrame:
    """Builds the users table from columns user_id, age, gender, occupation, zip_code."""
    check_unique(path, fmt, raw["user_id"], "user id")
    gender = raw["gender"].str.strip()
    row = first_bad(~gender.isin(GENDERS))
    if row is not None:
        raise fail_at(path, fmt, row, f"gender {show(gender.iloc[row])} is not 'M' or 'F'")
    return build(
        "users",
        {
            "user_id": raw["user_id"],
            "age": raw["age"],
            "gender": gender,
            "occupation": raw["occupation"].str.strip(),
            "zip_code": raw["zip_code"].str.strip(),
        },
    )


def tags_frame(path: Path, fmt: TextFormat, raw: pd.DataFrame) -> pd.DataFrame:
    """Builds the tags table from columns user_id, movie_id, tag, timestamp."""
    return build(
        "tags",
        {
            "user_id": raw["user_id"],
            "movie_id": raw["movie_id"],
            "tag": raw["tag"],
            "timestamp": seconds(path, fmt, raw["timestamp"]),
        },
    )
