"""Parser for the CSV layout of ml-latest-small and ml-25m: `ratings.csv`, `movies.csv`, `tags.csv`.

ratings.csv  userId,movieId,rating,timestamp
movies.csv   movieId,title,genres     (title holds the year: "Toy Story (1995)")
tags.csv     userId,movieId,tag,timestamp   (optional)

UTF-8, with a header line and double-quoted fields where needed (titles with commas or
quotes). Genres are "|"-separated; "(no genres listed)" becomes an empty list. There is no
users table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.data.errors import DatasetError
from models.data.parsers._common import movies_frame, read_ratings_table, tags_frame
from models.data.parsers._table import Columns, TextFormat, read_header, read_table
from models.data.schema import MovieLens
from models.data.titles import split_genres, split_titles

RATINGS_FILE = "ratings.csv"
MOVIES_FILE = "movies.csv"
TAGS_FILE = "tags.csv"
REQUIRED_FILES = (RATINGS_FILE, MOVIES_FILE)
OPTIONAL_FILES = (TAGS_FILE,)

CSV = TextFormat(sep=",", encoding="utf-8", quoted=True, header=True)

RATINGS_HEADER = ("userId", "movieId", "rating", "timestamp")
MOVIES_HEADER = ("movieId", "title", "genres")
TAGS_HEADER = ("userId", "movieId", "tag", "timestamp")


def parse_csv(directory: Path, variant: str = "ml-latest-small") -> MovieLens:
    """Parses an extracted ml-latest-small or ml-25m directory.

    Args:
        directory: Directory holding ratings.csv and movies.csv (and optionally tags.csv).
        variant: Variant name recorded in the result.

    Returns:
        The normalized ratings and movies tables, and tags where tags.csv exists.

    Raises:
        DatasetError: A file is missing or malformed; the message names file and line.
    """
    tags_path = directory / TAGS_FILE
    return MovieLens(
        variant=variant,
        ratings=read_ratings(directory / RATINGS_FILE),
        movies=read_movies(directory / MOVIES_FILE),
        tags=read_tags(tags_path) if tags_path.is_file() else None,
    )


def check_header(path: Path, expected: tuple[str, ...]) -> None:
    """Raises DatasetError unless the file's header line is exactly `expected`."""
    found = [field.strip().lstrip("\ufeff") for field in read_header(path, CSV)]
    if tuple(found) != expected:
        raise DatasetError(
            f"{path}, line 1: expected header {','.join(expected)!r}, found {','.join(found)!r}"
        )


def read_ratings(path: Path) -> pd.DataFrame:
    """Reads ratings.csv into the ratings table."""
    check_header(path, RATINGS_HEADER)
    return read_ratings_table(path, CSV)


def read_movies(path: Path) -> pd.DataFrame:
    """Reads movies.csv into the movies table."""
    check_header(path, MOVIES_HEADER)
    raw = read_table(path, CSV, [("movie_id", "int"), ("title", "str"), ("genres", "str")])
    titles, years = split_titles(raw["title"])
    genres = [split_genres(text, "|") for text in raw["genres"]]
    return movies_frame(path, CSV, raw["movie_id"], titles, years, genres)


def read_tags(path: Path) -> pd.DataFrame:
    """Reads tags.csv into the tags table."""
    check_header(path, TAGS_HEADER)
    columns: Columns = [
        ("user_id", "int"),
        ("movie_id", "int"),
        ("tag", "str"),
        ("timestamp", "int"),
    ]
    return tags_frame(path, CSV, read_table(path, CSV, columns))
