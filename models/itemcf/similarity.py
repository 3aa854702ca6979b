"""Sparse top-k item-to-item similarities from implicit interactions (scipy.sparse)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

Method = Literal["cosine", "ease"]


@dataclass(frozen=True)
class ItemCFConfig:
    """How the neighbour matrix is built.

    Attributes:
        method: "cosine": co-occurrence counts / (sqrt(n_i) sqrt(n_j) + shrink), computed
            sparsely in blocks of movies; "ease": the closed-form EASE weights
            B = I - P / diag(P), P = (X'X + lam I)^-1 (dense, catalogs up to
            `ease_max_items`), then cut to the top-k.
        top_k: Neighbours kept per movie (the artifact holds movies x top_k weights).
        shrink: Cosine shrinkage (damps pairs seen together only a few times).
        ease_lambda: EASE's L2 penalty.
        ease_max_items: Largest catalog EASE is built for (its dense solve is O(n^3)).
        block: Movies per block of the sparse cosine product.
    """

    method: Method = "ease"
    top_k: int = 200
    shrink: float = 10.0
    ease_lambda: float = 500.0
    ease_max_items: int = 20_000
    block: int = 2048

    def __post_init__(self) -> None:
        if self.method not in ("cosine", "ease"):
            raise ValueError(f"method must be 'cosine' or 'ease', not {self.method!r}")
        if self.top_k < 1 or self.block < 1:
            raise ValueError("top_k and block must be >= 1")
        if self.shrink < 0 or self.ease_lambda <= 0:
            raise ValueError("shrink must be >= 0 and ease_lambda > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


def interaction_matrix(
    ratings: pd.DataFrame, movie_ids: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Binary users x movies matrix (one column per `movie_ids` entry) and its row users."""
    column = pd.Index(movie_ids)
    cols = column.get_indexer(ratings["movie_id"].to_numpy(np.int64))
    keep = cols >= 0
    users, rows = np.unique(ratings["user_id"].to_numpy(np.int64)[keep], return_inverse=True)
    data = np.ones(int(keep.sum()), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, cols[keep])), shape=(len(users), len(movie_ids)))
    matrix.data[:] = 1.0  # duplicates summed by the constructor: back to binary
    return matrix, users


def _top_k_rows(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """Keeps the k largest positive entries of every row of `dense` (a block) as CSR."""
    n_rows, n_cols = dense.shape
    k = min(k, n_cols)
    part = np.argpartition(-dense, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(dense, part, axis=1)
    values = np.where(values > 0, values, 0.0).astype(np.float32)
    indptr = np.arange(0, n_rows * k + 1, k)
    out = sp.csr_matrix((values.ravel(), part.ravel(), indptr), shape=(n_rows, n_cols))
    out.eliminate_zeros()
    return out


def cosine_neighbours(matrix: sp.csr_matrix, config: ItemCFConfig) -> sp.csr_matrix:
    """Movies x movies shrunk-cosine similarities, top_k per row, diagonal removed."""
    by_item = matrix.T.tocsr()
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    norms = np.sqrt(counts)
    blocks = []
    n_items = by_item.shape[0]
    for lo in range(0, n_items, config.block):
        hi = min(lo + config.block, n_items)
        co = (by_item[lo:hi] @ matrix).toarray()  # [block, n_items] co-occurrence counts
        sims = co / (norms[lo:hi, None] * norms[None, :] + config.shrink + 1e-9)
        sims[np.arange(hi - lo), np.arange(lo, hi)] = 0.0
        blocks.append(_top_k_rows(sims, config.top_k))
    return sp.vstack(blocks).tocsr()


def ease_neighbours(matrix: sp.csr_matrix, config: ItemCFConfig) -> sp.csr_matrix:
    """Movies x movies EASE weights B[i, j] (i's contribution to j), top_k per row."""
    n_items = matrix.shape[1]
    if n_items > config.ease_max_items:
        raise ValueError(
            f"EASE needs a dense {n_items}x{n_items} solve; above ease_max_items="
            f"{config.ease_max_items} use method='cosine'"
        )
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices(n_items)] += config.ease_lambda
    inverse = np.linalg.inv(gram)
    weights = inverse / -np.diag(inverse)[None, :]
    weights[np.diag_indices(n_items)] = 0.0
    return _top_k_rows(weights, config.top_k)


def item_neighbours(
    ratings: pd.DataFrame, movie_ids: np.ndarray, config: ItemCFConfig
) -> sp.csr_matrix:
    """The neighbour matrix [movies, movies] (rows and columns in `movie_ids` order)."""
    matrix, _ = interaction_matrix(ratings, movie_ids)
    if config.method == "ease":
        return ease_neighbours(matrix, config)
    return cosine_neighbours(matrix, config)
