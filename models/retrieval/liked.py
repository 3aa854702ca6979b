"""Retrieval for users the model does not know, from the movies they liked.

A user who joined after the build has no user-tower embedding (the model answers from its
out-of-vocabulary bucket: the same list for every new user). Once they post likes, the mean of
their liked movies' two-tower embeddings (`retrieval/movie_embeddings.parquet`, the movie
tower's output) is a query in the same space: an exact dot-product top-n over the catalog,
like the model's own top-K.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.payloads import ScoredMovies

MOVIE_EMBEDDINGS_FILE = "movie_embeddings.parquet"


class LikedMoviesQuery:
    """The catalog's two-tower movie embeddings, queried with the mean of liked movies."""

    def __init__(self, movie_ids: np.ndarray, embeddings: np.ndarray) -> None:
        """Args:
        movie_ids: [N] int64.
        embeddings: [N, D] float32, aligned.
        """
        if embeddings.ndim != 2 or embeddings.shape[0] != movie_ids.shape[0]:
            raise ValueError(f"embeddings {embeddings.shape} do not match {movie_ids.shape} ids")
        self.movie_ids = movie_ids.astype(np.int64, copy=False)
        self.embeddings = embeddings.astype(np.float32, copy=False)
        self._row = {int(m): i for i, m in enumerate(self.movie_ids.tolist())}

    @classmethod
    def load(cls, retrieval_dir: Path) -> LikedMoviesQuery:
        """From `retrieval/movie_embeddings.parquet` (movie_id, embedding)."""
        frame = pd.read_parquet(Path(retrieval_dir) / MOVIE_EMBEDDINGS_FILE)
        embeddings = np.stack([np.asarray(e, dtype=np.float32) for e in frame["embedding"]])
        return cls(frame["movie_id"].to_numpy(), embeddings)

    def candidates(self, liked: Sequence[int], n: int) -> ScoredMovies:
        """The top-`n` movies by dot product with the mean of `liked`'s embeddings (liked
        movies included; none when no liked movie has an embedding)."""
        rows = [self._row[m] for m in liked if m in self._row]
        if not rows or n <= 0:
            return ScoredMovies.empty()
        query = self.embeddings[rows].mean(axis=0)
        scores = self.embeddings @ query
        n = min(int(n), len(scores))
        top = np.argpartition(-scores, n - 1)[:n]
        top = top[np.argsort(-scores[top], kind="stable")]
        return ScoredMovies(self.movie_ids[top], scores[top])
