"""A tiny MovieLens-shaped dataset in the `models.data.schema` format, for fast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi"]
WORDS = ["star", "love", "night", "dead", "space", "city", "king", "dream"]


def make_dataset(
    num_users: int = 40, num_movies: int = 60, per_user: int = 12, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Returns (ratings, movies, users); users prefer movies of "their" genre.

    Movie 7 has no year and no genres (to exercise the unknown paths).
    """
    rng = np.random.default_rng(seed)
    movie_ids = np.arange(1, num_movies + 1, dtype=np.int64)
    main_genre = rng.integers(0, len(GENRES), num_movies)
    genres = [
        [GENRES[g]] + ([GENRES[(g + 1) % len(GENRES)]] if i % 3 == 0 else [])
        for i, g in enumerate(main_genre)
    ]
    years = pd.array(rng.integers(1930, 2000, num_movies), dtype="Int64")
    titles = [
        f"{WORDS[i % len(WORDS)]} {WORDS[(i * 3) % len(WORDS)]} {i}" for i in range(num_movies)
    ]
    genres[6], years[6] = [], pd.NA
    movies = pd.DataFrame({"movie_id": movie_ids, "title": titles, "year": years, "genres": genres})

    user_ids = np.arange(1, num_users + 1, dtype=np.int64)
    users = pd.DataFrame(
        {
            "user_id": user_ids,
            "age": rng.integers(15, 70, num_users).astype(np.int64),
            "gender": rng.choice(["M", "F"], num_users),
            "occupation": rng.choice(["student", "engineer", "artist", "other"], num_users),
            "zip_code": [f"{rng.integers(0, 99999):05d}" for _ in range(num_users)],
        }
    )
    rows = []
    for u in user_ids:
        liked = np.flatnonzero(main_genre == u % len(GENRES))
        pool = np.concatenate([liked, liked, rng.integers(0, num_movies, 4)])
        chosen = rng.permutation(np.unique(pool))[:per_user]
        rows += [(u, movie_ids[m]) for m in chosen]
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id"])
    ratings["rating"] = rng.integers(1, 6, len(ratings)).astype(np.float32)
    ratings["timestamp"] = rng.integers(880_000_000, 890_000_000, len(ratings)).astype(np.int64)
    return ratings, movies, users
