"""Building and checking the normalized tables described in `models.data.schema`.

Parsers hand raw columns to the `*_frame` builders, which fix column order and dtypes;
`normalize` re-applies the same dtypes to tables read back from parquet; `check_dataset`
verifies the cross-table invariants every loaded variant must satisfy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.data.errors import DatasetError
from models.data.schema import TABLE_COLUMNS, MovieLens
from models.data.variants import Counts

DTYPES: dict[str, dict[str, Any]] = {
    "ratings": {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"},
    "movies": {"movie_id": "int64", "title": "string", "year": "Int64", "genres": object},
    "users": {
        "user_id": "int64",
        "age": "int64",
        "gender": "string",
        "occupation": "string",
        "zip_code": "string",
    },
    "tags": {"user_id": "int64", "movie_id": "int64", "tag": "string", "timestamp": "int64"},
}

RATING_MIN = 0.5
RATING_MAX = 5.0


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item) for item in value]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return [str(item) for item in value]  # numpy arrays from parquet, tuples


def build(table: str, columns: dict[str, Any]) -> pd.DataFrame:
    """Builds one normalized table from column data.

    Args:
        table: "ratings", "movies", "users" or "tags".
        columns: Column name to values (lists, arrays or Series), at least the table's columns.

    Returns:
        A DataFrame with exactly the schema's columns, in order, with the schema's dtypes
        and a fresh RangeIndex.
    """
    frame = pd.DataFrame(
        {name: pd.Series(columns[name]).reset_index(drop=True) for name in TABLE_COLUMNS[table]}
    )
    return normalize(table, frame)


def normalize(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Applies the schema's column order and dtypes to a table (e.g. one read from parquet).

    Args:
        table: "ratings", "movies", "users" or "tags".
        frame: The table; extra columns are dropped.

    Returns:
        A new DataFrame; `genres` holds Python lists of strings.
    """
    out = frame.loc[:, list(TABLE_COLUMNS[table])].copy()
    for name, dtype in DTYPES[table].items():
        if name == "genres":
            out[name] = [_as_list(value) for value in out[name]]
        else:
            out[name] = out[name].astype(dtype)
    return out.reset_index(drop=True)


def check_dataset(dataset: MovieLens, origin: str) -> None:
    """Checks the invariants every loaded variant satisfies.

    Args:
        dataset: The loaded tables.
        origin: Where they came from (a directory, archive or cache), for error messages.

    Raises:
        DatasetError: A table is empty, a rating is out of range, an id is duplicated, or
            a rating references a movie or user missing from its table.
    """
    ratings, movies = dataset.ratings, dataset.movies
    if ratings.empty:
        raise DatasetError(f"{origin}: no ratings")
    if movies.empty:
        raise DatasetError(f"{origin}: no movies")
    bad = ratings.loc[~ratings["rating"].between(RATING_MIN, RATING_MAX)]
    if not bad.empty:
        raise DatasetError(
            f"{origin}: rating {float(bad['rating'].iloc[0])} outside {RATING_MIN}..{RATING_MAX}"
            f" (user {int(bad['user_id'].iloc[0])}, movie {int(bad['movie_id'].iloc[0])})"
        )
    _check_unique(movies, "movie_id", f"{origin}: movies")
    _check_references(ratings, movies, "movie_id", origin, "movies")
    if dataset.users is not None:
        _check_unique(dataset.users, "user_id", f"{origin}: users")
        _check_references(ratings, dataset.users, "user_id", origin, "users")


def check_counts(dataset: MovieLens, expected: Counts, origin: str) -> None:
    """Checks a dataset against the counts its variant's README states.

    Args:
        dataset: The loaded tables.
        expected: The variant's expected counts.
        origin: Where the tables came from, for error messages.

    Raises:
        DatasetError: A count differs; the message shows expected and actual counts.
    """
    actual = {
        "ratings": len(dataset.ratings),
        "users": int(dataset.ratings["user_id"].nunique()),
        "movies": len(dataset.movies),
    }
    wanted = {"ratings": expected.ratings, "users": expected.users, "movies": expected.movies}
    if expected.tags is not None:
        actual["tags"] = 0 if dataset.tags is None else len(dataset.tags)
        wanted["tags"] = expected.tags
    wrong = [
        f"{name}: expected {wanted[name]:,}, got {actual[name]:,}"
        for name in wanted
        if actual[name] != wanted[name]
    ]
    if wrong:
        raise DatasetError(f"{origin}: unexpected counts ({'; '.join(wrong)})")


def _check_unique(frame: pd.DataFrame, column: str, where: str) -> None:
    duplicated = frame.loc[frame[column].duplicated(), column]
    if not duplicated.empty:
        raise DatasetError(f"{where}: duplicate {column} {int(duplicated.iloc[0])}")


def _check_references(
    ratings: pd.DataFrame, table: pd.DataFrame, column: str, origin: str, name: str
) -> None:
    missing = np.setdiff1d(ratings[column].unique(), table[column].to_numpy())
    if missing.size:
        shown = ", ".join(str(value) for value in missing[:5])
        raise DatasetError(
            f"{origin}: ratings reference {missing.size} {column} value(s) missing from the"
            f" {name} table (e.g. {shown})"
        )
