from __future__ import annotations

from pathlib import Path

from models.data.parsers import detect_layout, parse_directory
from models.data.parsers.classic import parse_classic
from models.data.variants import Layout
from tests.models.data._helpers import FIXTURES, assert_schema, rows

SOURCE = FIXTURES / "classic"


def test_detects_classic_layout() -> None:
    assert detect_layout(SOURCE, "ml-100k") == (Layout.CLASSIC, "ml-100k")


def test_ratings() -> None:
    data = parse_classic(SOURCE)
    assert_schema("ratings", data.ratings)
    assert rows(data.ratings) == [
        (1, 1, 5.0, 874965758),
        (1, 2, 3.0, 876893171),
        (2, 1, 4.0, 888550871),
        (2, 3, 2.0, 888551000),
        (3, 267, 1.0, 889237455),
        (3, 1, 4.0, 889237500),
    ]


def test_movies_titles_years_and_genre_flags() -> None:
    data = parse_classic(SOURCE)
    assert_schema("movies", data.movies)
    assert rows(data.movies) == [
        (1, "Toy Story", 1995, ["Animation", "Children's", "Comedy"]),
        (2, "Big Bang Theory, The", 1994, ["Documentary"]),
        (3, "Misérables, Les", 1995, ["Drama", "Musical"]),  # latin-1 decoded
        (267, "unknown", None, []),  # only the "unknown" flag: no genres
    ]


def test_users_keep_alphanumeric_zip_codes() -> None:
    data = parse_classic(SOURCE)
    assert data.users is not None
    assert_schema("users", data.users)
    assert rows(data.users) == [
        (1, 24, "M", "technician", "85711"),
        (2, 53, "F", "other", "94043"),
        (3, 23, "M", "writer", "T8H1N"),
    ]
    assert data.tags is None


def test_genre_order_comes_from_u_genre(tmp_path: Path) -> None:
    for name in ("u.data", "u.item", "u.user"):
        (tmp_path / name).write_bytes((SOURCE / name).read_bytes())
    genres = (SOURCE / "u.genre").read_text(encoding="latin-1").splitlines()
    genres[3], genres[4] = "Children's|3", "Animation|4"  # swap two names
    (tmp_path / "u.genre").write_text("\n".join(genres) + "\n", encoding="latin-1")
    movies = parse_directory(tmp_path, "ml-100k").movies
    assert movies.loc[0, "genres"] == ["Children's", "Animation", "Comedy"]


def test_without_u_genre_uses_standard_order(tmp_path: Path) -> None:
    for name in ("u.data", "u.item", "u.user"):
        (tmp_path / name).write_bytes((SOURCE / name).read_bytes())
    movies = parse_directory(tmp_path, "ml-100k").movies
    assert movies.loc[0, "genres"] == ["Animation", "Children's", "Comedy"]
