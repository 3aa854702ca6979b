"""Parser for RecBole atomic files: `<name>.inter`, `<name>.item` and `<name>.user`.

Each file is tab-separated UTF-8 whose header declares `field:type` (token, float,
token_seq). The fields used, and where they land in the schema:

<name>.inter  user_id:token -> user_id, item_id:token -> movie_id,
              rating:float -> rating, timestamp:float -> timestamp (whole seconds)
<name>.item   item_id:token -> movie_id, movie_title:token_seq -> title,
              release_year:token -> year, class:token_seq (or genre:token_seq) -> genres
              (space-separated)
<name>.user   user_id, age, gender, occupation, zip_code (all :token) -> same names
              (optional file)

RecBole has already cut the year out of the title. Where `release_year` is not a year
(ml-100k item 1412 has "V", from "... (1995) (V)"), the year is taken from the title as for
the other layouts. ml-100k item 267 is spelled "unkonwn" in RecBole's copy and is restored
to u.item's "unknown"; its genre "unknown" becomes an empty list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from models.data.errors import DatasetError
from models.data.parsers._common import movies_frame, ratings_frame, users_frame
from models.data.parsers._table import Columns, Kind, TextFormat, read_header, read_table
from models.data.schema import MovieLens
from models.data.titles import split_genres, split_title

INTER_SUFFIX = ".inter"
ITEM_SUFFIX = ".item"
USER_SUFFIX = ".user"

ATOMIC = TextFormat(sep="\t", encoding="utf-8", header=True)

INTER_FIELDS: dict[str, Kind] = {
    "user_id": "int",
    "item_id": "int",
    "rating": "float",
    "timestamp": "float",
}
ITEM_FIELDS: dict[str, Kind] = {"item_id": "int", "movie_title": "str", "release_year": "str"}
GENRE_FIELDS = ("class", "genre")
USER_FIELDS: dict[str, Kind] = {
    "user_id": "int",
    "age": "int",
    "gender": "str",
    "occupation": "str",
    "zip_code": "str",
}
_YEAR = re.compile(r"\d{4}")
_RECBOLE_TYPOS = {"unkonwn": "unknown"}


def required_files(prefix: str) -> tuple[str, ...]:
    """Returns the file names the parser needs for dataset `prefix` (e.g. "ml-100k")."""
    return (prefix + INTER_SUFFIX, prefix + ITEM_SUFFIX)


def optional_files(prefix: str) -> tuple[str, ...]:
    """Returns the file names the parser reads when present."""
    return (prefix + USER_SUFFIX,)


def find_prefix(directory: Path) -> str | None:
    """Returns the dataset name of the single `*.inter` file in `directory`, if exactly one."""
    names = sorted(path.stem for path in directory.glob("*" + INTER_SUFFIX) if path.is_file())
    return names[0] if len(names) == 1 else None


def parse_atomic(directory: Path, prefix: str, variant: str | None = None) -> MovieLens:
    """Parses RecBole atomic files.

    Args:
        directory: Directory holding `<prefix>.inter` and `<prefix>.item` (and `.user`).
        prefix: The files' common name, e.g. "ml-100k".
        variant: Variant name recorded in the result; defaults to `prefix`.

    Returns:
        The normalized ratings and movies tables, and users where `<prefix>.user` exists.

    Raises:
        DatasetError: A file is missing or malformed; the message names file and line.
    """
    user_path = directory / (prefix + USER_SUFFIX)
    return MovieLens(
        variant=variant or prefix,
        ratings=read_inter(directory / (prefix + INTER_SUFFIX)),
        movies=read_items(directory / (prefix + ITEM_SUFFIX)),
        users=read_users(user_path) if user_path.is_file() else None,
    )


def header_columns(
    path: Path, wanted: Mapping[str, Kind], alternatives: tuple[str, ...] = ()
) -> Columns:
    """Reads an atomic header and assigns each field the kind it is parsed as.

    Args:
        path: The atomic file.
        wanted: Fields that must be present, with their kinds.
        alternatives: Names of which at least one must be present (read as str).

    Returns:
        (field name, kind) for every header field, in file order; fields not wanted are str.

    Raises:
        DatasetError: The header is not `name:type` fields or lacks a wanted field.
    """
    header = read_header(path, ATOMIC)
    if not all(":" in field for field in header):
        raise DatasetError(
            f"{path}, line 1: not a RecBole atomic header (expected name:type fields),"
            f" found {header!r}"
        )
    names = [field.split(":", 1)[0].strip() for field in header]
    missing = [name for name in wanted if name not in names]
    if alternatives and not any(name in names for name in alternatives):
        missing.append(" or ".join(alternatives))
    if missing:
        raise DatasetError(f"{path}, line 1: header lacks field(s) {', '.join(missing)}")
    return [(name, wanted.get(name, "str")) for name in names]


def read_inter(path: Path) -> pd.DataFrame:
    """Reads `<name>.inter` into the ratings table."""
    raw = read_table(path, ATOMIC, header_columns(path, INTER_FIELDS))
    raw = raw.rename(columns={"item_id": "movie_id"})
    return ratings_frame(path, ATOMIC, raw)


def read_items(path: Path) -> pd.DataFrame:
    """Reads `<name>.item` into the movies table."""
    raw = read_table(path, ATOMIC, header_columns(path, ITEM_FIELDS, GENRE_FIELDS))
    genre_field = next(name for name in GENRE_FIELDS if name in raw.columns)
    titles: list[str] = []
    years: list[int | None] = []
    for text, year_text in zip(raw["movie_title"], raw["release_year"], strict=True):
        title = _RECBOLE_TYPOS.get(text.strip(), text.strip())
        year_text = year_text.strip()
        if _YEAR.fullmatch(year_text):
            titles.append(title)
            years.append(int(year_text))
        elif _RECBOLE_TYPOS.get(year_text, year_text) == "unknown":
            titles.append(title)
            years.append(None)
        else:
            stripped, year = split_title(title)
            titles.append(stripped)
            years.append(year)
    genres = [split_genres(text, None) for text in raw[genre_field]]
    return movies_frame(path, ATOMIC, raw["item_id"], titles, years, genres)


def read_users(path: Path) -> pd.DataFrame:
    """Reads `<name>.user` into the users table."""
    return users_frame(path, ATOMIC, read_table(path, ATOMIC, header_columns(path, USER_FIELDS)))
