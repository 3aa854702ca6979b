"""The serving catalog and the popularity list, both computed from the build's ratings."""

from __future__ import annotations

import hashlib

import pandas as pd


def popularity(ratings: pd.DataFrame) -> pd.DataFrame:
    """Movies ranked by how many ratings they received.

    The popularity baseline of the evaluation, and the in-memory fallback and cold-start
    list of serving.

    Args:
        ratings: Ratings table (schema.py), usually the training split.

    Returns:
        Columns movie_id (int64), rating_count (int64), mean_rating (float32), rank (int64,
        1 = most rated); sorted by rank. Ties on count are broken by mean rating, then id.
    """
    stats = ratings.groupby("movie_id", sort=False)["rating"].agg(["count", "mean"])
    stats = stats.rename(columns={"count": "rating_count", "mean": "mean_rating"})
    stats = stats.reset_index().sort_values(
        ["rating_count", "mean_rating", "movie_id"], ascending=[False, False, True]
    )
    stats["mean_rating"] = stats["mean_rating"].astype("float32")
    stats["rating_count"] = stats["rating_count"].astype("int64")
    stats["rank"] = range(1, len(stats) + 1)
    return stats.reset_index(drop=True)


def dataset_fingerprint(tables: dict[str, pd.DataFrame | None]) -> str:
    """A content hash of normalized tables, independent of parquet encoding details.

    Args:
        tables: Table name -> DataFrame (None for tables the variant lacks).

    Returns:
        Hex SHA-256 that changes when any value, column or row order changes.
    """
    digest = hashlib.sha256()
    for name in sorted(tables):
        frame = tables[name]
        digest.update(name.encode())
        if frame is None:
            continue
        flat = frame.copy()
        for column in flat.columns:
            if flat[column].dtype == object:
                flat[column] = flat[column].map(repr)
        digest.update(",".join(map(str, flat.columns)).encode())
        digest.update(pd.util.hash_pandas_object(flat, index=False).to_numpy().tobytes())
    return digest.hexdigest()
