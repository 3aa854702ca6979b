from __future__ import annotations

from models.data.parsers import detect_layout, parse_directory
from models.data.variants import Layout
from tests.models.data._helpers import FIXTURES, assert_schema, rows

SOURCE = FIXTURES / "csv"


def test_detects_csv_layout() -> None:
    assert detect_layout(SOURCE, "ml-latest-small") == (Layout.CSV, "ml-latest-small")


def test_ratings() -> None:
    data = parse_directory(SOURCE, "ml-latest-small")
    assert_schema("ratings", data.ratings)
    assert rows(data.ratings) == [
        (1, 1, 4.0, 964982703),
        (1, 11, 3.5, 964981247),
        (2, 27, 0.5, 1445714835),
        (2, 171749, 5.0, 1445715000),
    ]


def test_movies_quotes_commas_years_and_no_genres() -> None:
    data = parse_directory(SOURCE, "ml-latest-small")
    assert_schema("movies", data.movies)
    assert rows(data.movies) == [
        (1, "Toy Story", 1995, ["Adventure", "Animation", "Children", "Comedy", "Fantasy"]),
        (11, "American President, The", 1995, ["Comedy", "Drama", "Romance"]),
        (27, '"Great Performances" Cats', 1998, ["Musical"]),
        (2, "Jumanji", 1995, ["Adventure", "Children", "Fantasy"]),  # trailing space
        (162376, "Stranger Things", None, ["Drama"]),  # no year
        (171749, "Death Note: Desu nôto", 2006, []),  # year range; (no genres listed)
    ]


def test_tags_keep_text_verbatim() -> None:
    data = parse_directory(SOURCE, "ml-latest-small")
    assert data.users is None
    assert data.tags is not None
    assert_schema("tags", data.tags)
    assert rows(data.tags) == [
        (2, 27, "funny, sad", 1445714994),
        (2, 1, "NA", 1445714996),  # not turned into a missing value
    ]
