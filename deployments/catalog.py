"""The in-memory catalog of the Controller: titles, genres, years and the popularity list.

Loaded once per replica from the artifacts tree (`catalog/movies.parquet` and
`catalog/popularity.parquet`, see `models.pipeline.catalog`); a few thousand movies fit in a
few megabytes, so every lookup is a dict access.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.rules import Item, RuleConfig, apply_post_rules, filter_items

MOVIES_FILE = "movies.parquet"
POPULARITY_FILE = "popularity.parquet"


@dataclass(frozen=True, slots=True)
class Movie:
    """What the API shows of a movie.

    Attributes:
        movie_id: MovieLens id.
        title: Title without the year.
        genres: Genre names as the catalog spells them.
        year: Release year, None when unknown.
    """

    movie_id: int
    title: str
    genres: tuple[str, ...]
    year: int | None


class Catalog:
    """Movies by id, the set of genre names, and movie ids by popularity (most popular first)."""

    def __init__(self, movies: Iterable[Movie], popular_ids: Sequence[int] = ()) -> None:
        """Builds the catalog.

        Args:
            movies: Every servable movie.
            popular_ids: Movie ids, most popular first; ids not in `movies` are dropped.
        """
        self.movies: dict[int, Movie] = {m.movie_id: m for m in movies}
        self.genres: frozenset[str] = frozenset(g for m in self.movies.values() for g in m.genres)
        self.popular_ids: tuple[int, ...] = tuple(
            dict.fromkeys(int(i) for i in popular_ids if int(i) in self.movies)
        )
        years = [m.year for m in self.movies.values() if m.year is not None]
        self.newest_year: int | None = max(years) if years else None

    def __len__(self) -> int:
        return len(self.movies)

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self.movies

    @classmethod
    def from_frames(cls, movies: pd.DataFrame, popularity: pd.DataFrame | None) -> Catalog:
        """Builds the catalog from the normalized movies table and the popularity table.

        Args:
            movies: movie_id, title, year (nullable), genres (list of str).
            popularity: movie_id and, if present, rank (1 = most popular); without a rank
                column the row order is the popularity order. None: no popularity list.
        """
        built = []
        for movie_id, title, year, genres in zip(
            movies["movie_id"].to_numpy(dtype=np.int64).tolist(),
            movies["title"].tolist(),
            movies["year"].tolist(),
            movies["genres"].tolist(),
            strict=True,
        ):
            built.append(
                Movie(
                    movie_id=int(movie_id),
                    title="" if title is None or pd.isna(title) else str(title),
                    genres=tuple(str(g) for g in (genres if genres is not None else ())),
                    year=None if year is None or pd.isna(year) else int(year),
                )
            )
        popular: list[int] = []
        if popularity is not None and len(popularity):
            ordered = popularity.sort_values("rank") if "rank" in popularity else popularity
            popular = ordered["movie_id"].to_numpy(dtype=np.int64).tolist()
        return cls(built, popular)

    @classmethod
    def load(cls, catalog_dir: Path) -> Catalog:
        """Reads `movies.parquet` and (if present) `popularity.parquet` from `catalog_dir`.

        Raises:
            FileNotFoundError: `movies.parquet` is missing.
        """
        movies = pd.read_parquet(catalog_dir / MOVIES_FILE)
        popularity_path = catalog_dir / POPULARITY_FILE
        popularity = pd.read_parquet(popularity_path) if popularity_path.exists() else None
        return cls.from_frames(movies, popularity)

    def item(self, movie_id: int, score: float) -> Item:
        """A rules `Item` for a movie (unknown movies get no genres and no year)."""
        movie = self.movies.get(movie_id)
        if movie is None:
            return Item(movie_id, score)
        return Item(movie_id, score, movie.genres, movie.year)

    def unknown_genres(self, genres: Iterable[str]) -> list[str]:
        """The requested genres the catalog does not have, in request order."""
        return [g for g in dict.fromkeys(genres) if g not in self.genres]

    def popular_items(
        self,
        n: int,
        *,
        seen: Collection[int] = (),
        exclude: Collection[int] = (),
        genres: Collection[str] | None = None,
        year_range: tuple[int | None, int | None] | None = None,
    ) -> list[Item]:
        """The `n` most popular movies passing the filters, scored by 1 / rank.

        Scores are positive, decreasing and comparable only among themselves.
        """
        out: list[Item] = []
        if n <= 0:
            return out
        for rank, movie_id in enumerate(self.popular_ids, start=1):
            candidate = self.item(movie_id, 1.0 / rank)
            if filter_items([candidate], seen, exclude, genres, year_range):
                out.append(candidate)
                if len(out) == n:
                    break
        return out

    def cold_start(
        self,
        k: int,
        rules: RuleConfig,
        *,
        exclude: Collection[int] = (),
        genres: Collection[str] | None = None,
        year_range: tuple[int | None, int | None] | None = None,
        pool: int = 200,
    ) -> list[Item]:
        """The list an unknown user gets: popular movies, made genre-diverse by the same
        genre cap as personal lists (the requested genres exempt from it).

        Args:
            k: List length.
            rules: The post-ranking rules (genre cap and window; boosts apply too).
            exclude: Movie ids the request excludes.
            genres: Keep only movies with one of these genres.
            year_range: Inclusive release-year bounds.
            pool: How many popular movies the cap may reorder.
        """
        items = self.popular_items(
            max(pool, k), exclude=exclude, genres=genres, year_range=year_range
        )
        return apply_post_rules(items, rules, self.newest_year, k, exempt_genres=genres or ())
