"""Exact (brute-force numpy) nearest-neighbour search: the reference for the HNSW index.

Same semantics as `models.content.query` (cosine similarity, exclusion, seed aggregation,
ties broken by the smaller movie id), computed exactly over all vectors. Used by the tests and
by the HNSW-recall benchmark; also handy for fast offline sweeps over seed policies.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from models.content.query import Aggregation


class ExactIndex:
    """All movie vectors in memory, searched exhaustively.

    Args:
        movie_ids: int64 array of shape (n,).
        vectors: float32 array of shape (n, d); rows are L2-normalized here (cosine).
    """

    def __init__(self, movie_ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(movie_ids, dtype=np.int64)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or len(ids) != len(matrix):
            raise ValueError("need movie_ids (n,) and vectors (n, d)")
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        self.movie_ids = ids
        self.vectors = matrix / np.where(norms == 0, 1, norms)
        self._row = {int(movie_id): row for row, movie_id in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.movie_ids)

    def __contains__(self, movie_id: object) -> bool:
        return movie_id in self._row

    def vector(self, movie_id: int) -> np.ndarray:
        """Unit vector (d,) of a movie.

        Raises:
            KeyError: Unknown movie id.
        """
        return self.vectors[self._row[int(movie_id)]]

    def scores(self, query: np.ndarray) -> np.ndarray:
        """Cosine similarity (n,) of every movie to a query vector (d,)."""
        q = np.asarray(query, dtype=np.float32)
        norm = float(np.linalg.norm(q))
        return self.vectors @ (q / norm if norm else q)

    def top_k(
        self, scores: np.ndarray, k: int, exclude_ids: Collection[int] = ()
    ) -> list[tuple[int, float]]:
        """Best `k` (movie_id, score) by score desc, then movie_id asc, skipping excluded."""
        keep = np.ones(len(scores), dtype=bool)
        rows = [self._row[int(i)] for i in exclude_ids if int(i) in self._row]
        keep[rows] = False
        candidates = np.flatnonzero(keep)
        order = np.lexsort((self.movie_ids[candidates], -scores[candidates]))[:k]
        chosen = candidates[order]
        return [(int(self.movie_ids[r]), float(scores[r])) for r in chosen]

    def knn(
        self, query: np.ndarray, k: int, exclude_ids: Collection[int] = ()
    ) -> list[tuple[int, float]]:
        """Exact `k` nearest movies (movie_id, cosine) of a vector (d,)."""
        return self.top_k(self.scores(query), k, exclude_ids)

    def similar_movies(self, movie_id: int, k: int) -> list[tuple[int, float]]:
        """Exact `k` nearest neighbours of a movie, itself excluded."""
        return self.knn(self.vector(movie_id), k, exclude_ids={int(movie_id)})

    def recommend_for_seeds(
        self,
        seed_movie_ids: Sequence[int],
        k: int,
        exclude_ids: Collection[int] = (),
        seed_weights: Sequence[float] | None = None,
        aggregation: Aggregation = "max",
        exclude_seeds: bool = True,
    ) -> list[tuple[int, float]]:
        """Exact counterpart of `VectorSearch.recommend_for_seeds`.

        Returns:
            Up to `k` (movie_id, score), best first; score is max_s w_s cos(s, x) with the
            largest weight 1 ("max"), or sum_s w_s cos(s, x) with weights summing to 1 ("sum").
        """
        weights: dict[int, float] = {}
        for i, movie_id in enumerate(seed_movie_ids):
            weight = 1.0 if seed_weights is None else float(seed_weights[i])
            weights[int(movie_id)] = weights.get(int(movie_id), 0.0) + weight
        known = [m for m in weights if m in self._row]
        if not known or k <= 0:
            return []
        w = np.array([weights[m] for m in known], dtype=np.float64)
        sims = self.vectors[[self._row[m] for m in known]] @ self.vectors.T  # (s, n)
        if aggregation == "max":
            scores = ((w / w.max())[:, None] * sims).max(axis=0)
        elif aggregation == "sum":
            scores = (w / w.sum()) @ sims
        else:
            raise ValueError(f"aggregation must be 'max' or 'sum', not {aggregation!r}")
        excluded = {int(i) for i in exclude_ids} | (set(weights) if exclude_seeds else set())
        return self.top_k(scores, k, excluded)
