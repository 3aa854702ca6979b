"""A small but real slice of ml-100k, for tests that build whole artifacts trees."""

from __future__ import annotations

import pytest

from models.data import MovieLens, load_dataset


def slice_movielens(full: MovieLens, users: int) -> MovieLens:
    """The `users` lightest raters of `full`, with only the movies they rated."""
    counts = full.ratings["user_id"].value_counts(ascending=True)
    keep_users = set(counts.index[:users])
    ratings = full.ratings[full.ratings["user_id"].isin(keep_users)].reset_index(drop=True)
    movies = full.movies[full.movies["movie_id"].isin(set(ratings["movie_id"]))]
    user_table = None
    if full.users is not None:
        user_table = full.users[full.users["user_id"].isin(keep_users)].reset_index(drop=True)
    return MovieLens(full.variant, ratings, movies.reset_index(drop=True), user_table, None)


@pytest.fixture(scope="session")
def small_movielens() -> MovieLens:
    """60 users of ml-100k and the movies they rated (loaded from the data cache)."""
    return slice_movielens(load_dataset("ml-100k"), users=60)
