from __future__ import annotations

from models.data.parsers import detect_layout, parse_directory
from models.data.variants import Layout
from tests.models.data._helpers import FIXTURES, assert_schema, rows

SOURCE = FIXTURES / "dat"


def test_detects_dat_layout() -> None:
    assert detect_layout(SOURCE, "ml-1m") == (Layout.DAT, "ml-1m")


def test_ratings() -> None:
    data = parse_directory(SOURCE, "ml-1m")
    assert data.variant == "ml-1m"
    assert_schema("ratings", data.ratings)
    assert rows(data.ratings) == [
        (1, 1193, 5.0, 978300760),
        (1, 661, 3.0, 978302109),
        (2, 1193, 4.0, 978298413),
        (2, 1100, 2.0, 978299000),
    ]


def test_movies() -> None:
    data = parse_directory(SOURCE, "ml-1m")
    assert_schema("movies", data.movies)
    assert rows(data.movies) == [
        (1193, "One Flew Over the Cuckoo's Nest", 1975, ["Drama"]),
        (661, "James and the Giant Peach", 1996, ["Animation", "Children's", "Musical"]),
        (1100, "Ménage (Tenue de soirée)", 1986, ["Comedy", "Drama"]),
        (2, "Jumanji", 1995, ["Adventure", "Children's", "Fantasy"]),
    ]


def test_users_map_occupation_codes_and_keep_age_buckets() -> None:
    data = parse_directory(SOURCE, "ml-1m")
    assert data.users is not None
    assert_schema("users", data.users)
    assert rows(data.users) == [
        (1, 1, "F", "K-12 student", "48067"),
        (2, 56, "M", "self-employed", "70072"),
    ]
