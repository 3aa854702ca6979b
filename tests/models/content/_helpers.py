"""Helpers of the content-retrieval tests: unique index names and a synthetic catalogue."""

from __future__ import annotations

import contextlib
import uuid

import numpy as np
import pandas as pd
import redis

from models.content.index import IndexConfig, drop_index, list_versions

GENRES = (
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


def unique_config(**overrides: int) -> IndexConfig:
    """An index config whose alias and key prefix no other test uses."""
    tag = uuid.uuid4().hex[:8]
    return IndexConfig(alias=f"test-movies-{tag}", key_prefix=f"test-movie-{tag}", **overrides)


def drop_all_versions(client: redis.Redis, config: IndexConfig) -> None:
    """Drops every version of `config` (documents included) and its alias."""
    for version in list_versions(client, config):
        drop_index(client, config.index_name(version), delete_documents=True)
    with contextlib.suppress(redis.ResponseError):
        client.execute_command("FT.ALIASDEL", config.alias)


def synthetic_catalogue(n: int = 300, dim: int = 384, seed: int = 7) -> pd.DataFrame:
    """n movies with random unit vectors, 1-3 genres from ml-100k's list, years 1940-1999.

    Movie 1 has no year and no genres. Columns: movie_id, title, year, genres, embedding.
    """
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    genres = [
        sorted(rng.choice(GENRES, size=rng.integers(1, 4), replace=False).tolist())
        for _ in range(n)
    ]
    years = pd.array(rng.integers(1940, 2000, size=n), dtype="Int64")
    genres[0], years[0] = [], pd.NA
    return pd.DataFrame(
        {
            "movie_id": np.arange(1, n + 1, dtype=np.int64),
            "title": [f"Movie {i}" for i in range(1, n + 1)],
            "year": years,
            "genres": genres,
            "embedding": list(vectors),
        }
    )
