"""Parser for the classic ml-100k layout: `u.data`, `u.item`, `u.user` and `u.genre`.

u.data  user id \\t item id \\t rating \\t timestamp
u.item  movie id | title | release date | video release date | IMDb URL | 19 genre flags
u.user  user id | age | gender | occupation | zip code
u.genre genre name | flag index (optional; the standard 19 genres are used without it)

The `|` files are latin-1 and unquoted. Genre flags follow the order of `u.genre`; the
"unknown" genre is not a genre, so a movie flagged only "unknown" gets an empty list.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.data.errors import DatasetError
from models.data.parsers._common import (
    first_bad,
    movies_frame,
    read_ratings_table,
    users_frame,
)
from models.data.parsers._table import Columns, Kind, TextFormat, fail_at, read_table
from models.data.schema import MovieLens
from models.data.titles import clean_genres, split_titles

RATINGS_FILE = "u.data"
MOVIES_FILE = "u.item"
USERS_FILE = "u.user"
GENRES_FILE = "u.genre"
REQUIRED_FILES = (RATINGS_FILE, MOVIES_FILE, USERS_FILE)
OPTIONAL_FILES = (GENRES_FILE,)

DEFAULT_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

TAB = TextFormat(sep="\t", encoding="latin-1")
PIPE = TextFormat(sep="|", encoding="latin-1")


def parse_classic(directory: Path, variant: str = "ml-100k") -> MovieLens:
    """Parses an extracted ml-100k directory.

    Args:
        directory: Directory holding u.data, u.item and u.user (and optionally u.genre).
        variant: Variant name recorded in the result.

    Returns:
        The normalized ratings, movies and users tables.

    Raises:
        DatasetError: A file is missing or malformed; the message names file and line.
    """
    genres = read_genre_names(directory / GENRES_FILE)
    return MovieLens(
        variant=variant,
        ratings=read_ratings(directory / RATINGS_FILE),
        movies=read_movies(directory / MOVIES_FILE, genres),
        users=read_users(directory / USERS_FILE),
    )


def read_ratings(path: Path) -> pd.DataFrame:
    """Reads u.data into the ratings table."""
    return read_ratings_table(path, TAB)


def read_genre_names(path: Path) -> tuple[str, ...]:
    """Reads u.genre ("name|index" lines); the standard 19 genres if the file is absent."""
    if not path.is_file():
        return DEFAULT_GENRES
    raw = read_table(path, PIPE, [("name", "str"), ("index", "int")])
    if list(raw["index"]) != list(range(len(raw))) or len(raw) != len(DEFAULT_GENRES):
        raise DatasetError(
            f"{path}: expected {len(DEFAULT_GENRES)} genres numbered 0..{len(DEFAULT_GENRES) - 1},"
            f" found indexes {list(raw['index'])}"
        )
    return tuple(str(name) for name in raw["name"])


def read_movies(path: Path, genre_names: tuple[str, ...] = DEFAULT_GENRES) -> pd.DataFrame:
    """Reads u.item into the movies table."""
    flag_columns = [f"genre_{index}" for index in range(len(genre_names))]
    flag_kind: Kind = "int"
    columns: Columns = [
        ("movie_id", "int"),
        ("title", "str"),
        ("release_date", "str"),
        ("video_release_date", "str"),
        ("imdb_url", "str"),
        *((name, flag_kind) for name in flag_columns),
    ]
    raw = read_table(path, PIPE, columns)
    flags = raw[flag_columns]
    row = first_bad(~flags.isin((0, 1)).all(axis=1))
    if row is not None:
        raise fail_at(path, PIPE, row, f"genre flags must be 0 or 1, found {list(flags.iloc[row])}")
    titles, years = split_titles(raw["title"])
    genres = [
        clean_genres(name for name, flag in zip(genre_names, row_flags, strict=True) if flag)
        for row_flags in flags.itertuples(index=False)
    ]
    return movies_frame(path, PIPE, raw["movie_id"], titles, years, genres)


def read_users(path: Path) -> pd.DataFrame:
    """Reads u.user into the users table."""
    columns: Columns = [
        ("user_id", "int"),
        ("age", "int"),
        ("gender", "str"),
        ("occupation", "str"),
        ("zip_code", "str"),
    ]
    return users_frame(path, PIPE, read_table(path, PIPE, columns))
