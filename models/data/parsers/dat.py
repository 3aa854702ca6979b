"""Parser for the ml-1m layout: `ratings.dat`, `movies.dat` and `users.dat`.

ratings.dat  UserID::MovieID::Rating::Timestamp
movies.dat   MovieID::Title::Genres            (genres "|"-separated)
users.dat    UserID::Gender::Age::Occupation::Zip-code

The files are latin-1 and unquoted. Age is kept as the README's bucket lower bound (1, 18,
25, ...); the occupation code is replaced by its README name.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.data.parsers._common import first_bad, movies_frame, read_ratings_table, users_frame
from models.data.parsers._table import Columns, TextFormat, fail_at, read_table
from models.data.schema import MovieLens
from models.data.titles import split_genres, split_titles

RATINGS_FILE = "ratings.dat"
MOVIES_FILE = "movies.dat"
USERS_FILE = "users.dat"
REQUIRED_FILES = (RATINGS_FILE, MOVIES_FILE, USERS_FILE)
OPTIONAL_FILES: tuple[str, ...] = ()

DAT = TextFormat(sep="::", encoding="latin-1")

# ml-1m README, "User file description"; code 0 is '"other" or not specified'.
OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student",
    "customer service", "doctor/health care", "executive/managerial", "farmer", "homemaker",
    "K-12 student", "lawyer", "programmer", "retired", "sales/marketing", "scientist",
    "self-employed", "technician/engineer", "tradesman/craftsman", "unemployed", "writer",
)  # fmt: skip


def parse_dat(directory: Path, variant: str = "ml-1m") -> MovieLens:
    """Parses an extracted ml-1m directory.

    Args:
        directory: Directory holding ratings.dat, movies.dat and users.dat.
        variant: Variant name recorded in the result.

    Returns:
        The normalized ratings, movies and users tables.

    Raises:
        DatasetError: A file is missing or malformed; the message names file and line.
    """
    return MovieLens(
        variant=variant,
        ratings=read_ratings(directory / RATINGS_FILE),
        movies=read_movies(directory / MOVIES_FILE),
        users=read_users(directory / USERS_FILE),
    )


def read_ratings(path: Path) -> pd.DataFrame:
    """Reads ratings.dat into the ratings table."""
    return read_ratings_table(path, DAT)


def read_movies(path: Path) -> pd.DataFrame:
    """Reads movies.dat into the movies table."""
    raw = read_table(path, DAT, [("movie_id", "int"), ("title", "str"), ("genres", "str")])
    titles, years = split_titles(raw["title"])
    genres = [split_genres(text, "|") for text in raw["genres"]]
    return movies_frame(path, DAT, raw["movie_id"], titles, years, genres)


def read_users(path: Path) -> pd.DataFrame:
    """Reads users.dat into the users table."""
    columns: Columns = [
        ("user_id", "int"),
        ("gender", "str"),
        ("age", "int"),
        ("occupation", "int"),
        ("zip_code", "str"),
    ]
    raw = read_table(path, DAT, columns)
    codes = raw["occupation"]
    row = first_bad(~codes.between(0, len(OCCUPATIONS) - 1))
    if row is not None:
        raise fail_at(path, DAT, row, f"unknown occupation code {int(codes.iloc[row])}")
    raw["occupation"] = [OCCUPATIONS[code] for code in codes]
    return users_frame(path, DAT, raw)
