"""The Controller's in-memory catalog: lookups, popular lists, the cold-start list."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from deployments.catalog import Catalog
from models.pipeline.catalog import popularity
from movierec.rules import RuleConfig, genre_cap_holds

MOVIES = pd.DataFrame(
    {
        "movie_id": [1, 2, 3, 4, 5, 6, 7, 8],
        "title": ["A", "B", "C", "D", "E", "F", "G", None],
        "year": pd.array([1995, 1990, None, 1980, 1999, 1999, 1970, 1960], dtype="Int64"),
        "genres": [
            ["Drama"],
            ["Drama", "Romance"],
            ["Drama"],
            ["Comedy"],
            ["Drama", "War"],
            ["Drama"],
            ["Children's", "Comedy"],
            [],
        ],
    }
)
# Movie 1 most rated, then 2, 3, ... (popularity() sorts by count).
RATINGS = pd.DataFrame(
    {
        "user_id": list(range(36)),
        "movie_id": [
            m for m, n in zip(range(1, 9), range(8, 0, -1), strict=True) for _ in range(n)
        ],
        "rating": [4.0] * 36,
        "timestamp": [0] * 36,
    }
)


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.from_frames(MOVIES, popularity(RATINGS))


def test_lookups(catalog: Catalog) -> None:
    assert len(catalog) == 8
    assert 3 in catalog and 99 not in catalog
    assert catalog.movies[3].year is None
    assert catalog.movies[8].title == ""
    assert catalog.genres == {"Drama", "Romance", "Comedy", "War", "Children's"}
    assert catalog.newest_year == 1999
    assert catalog.popular_ids == (1, 2, 3, 4, 5, 6, 7, 8)
    assert catalog.unknown_genres(["Drama", "Sci-Fi", "Sci-Fi"]) == ["Sci-Fi"]
    item = catalog.item(2, 0.5)
    assert (item.genres, item.year, item.score) == (("Drama", "Romance"), 1990, 0.5)
    assert catalog.item(99, 1.0).genres == ()


def test_popular_items_apply_every_filter(catalog: Catalog) -> None:
    assert [i.movie_id for i in catalog.popular_items(3)] == [1, 2, 3]
    assert [i.movie_id for i in catalog.popular_items(3, seen={1}, exclude={2})] == [3, 4, 5]
    assert [i.movie_id for i in catalog.popular_items(9, genres=["Comedy"])] == [4, 7]
    # Unknown years fail a year filter.
    assert [i.movie_id for i in catalog.popular_items(9, year_range=(1990, None))] == [1, 2, 5, 6]
    scores = [i.score for i in catalog.popular_items(4)]
    assert scores == sorted(scores, reverse=True)
    assert catalog.popular_items(0) == []


def test_cold_start_is_popular_and_genre_capped(catalog: Catalog) -> None:
    rules = RuleConfig(genre_cap=2, genre_window=4)
    items = catalog.cold_start(4, rules)
    assert genre_cap_holds(items, 2, 4)
    # 1 and 2 are Drama; 3 (Drama) waits for 4 (Comedy) and 5, 6 would be Drama again.
    assert [i.movie_id for i in items] == [1, 2, 4, 7]
    # A requested genre is exempt from the cap.
    dramas = catalog.cold_start(4, rules, genres=["Drama"])
    assert [i.movie_id for i in dramas] == [1, 2, 3, 5]
    assert catalog.cold_start(2, rules, exclude={1, 2}) == catalog.cold_start(
        2, rules, exclude={1, 2}
    )


def test_load_from_a_catalog_dir(tmp_path: Path) -> None:
    MOVIES.to_parquet(tmp_path / "movies.parquet", index=False)
    loaded = Catalog.load(tmp_path)  # no popularity file: an empty fallback list
    assert len(loaded) == 8 and loaded.popular_ids == ()
    popularity(RATINGS).iloc[::-1].to_parquet(tmp_path / "popularity.parquet", index=False)
    assert Catalog.load(tmp_path).popular_ids == (1, 2, 3, 4, 5, 6, 7, 8)  # by rank
