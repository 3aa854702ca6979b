"""Synthetic catalogs for the scale benchmark: clustered unit vectors, exact top-k, recall.

Real embeddings are not uniform on the sphere: movies form niches. The catalog is a seeded
Gaussian mixture with one cluster per `ITEMS_PER_CLUSTER` movies (so a bigger catalog has
more niches of the same size), within-cluster noise as large as the spread of the centres
(`CLUSTER_NOISE`), L2-normalized so that cosine similarity (Redis) and dot product
(BruteForce, ScaNN) rank alike. Queries are fresh draws from the same mixture, as user
embeddings of a two-tower model are not catalog items. Recall measured on this data is a
property of this data: clustered real embeddings usually make approximate search easier,
uniform noise makes it harder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ITEMS_PER_CLUSTER = 100
CLUSTER_NOISE = 1.0
_CHUNK_ROWS = 65_536
_SCORE_BUDGET = 1 << 26  # float32 scores computed at once by exact_top_k (256 MB)


@dataclass(frozen=True)
class Catalog:
    """A synthetic catalog and its queries.

    Attributes:
        items: float32 (n, dim), unit rows; movie i has id i.
        queries: float32 (n_queries, dim), unit rows.
        n_clusters: Mixture components.
        seed: Seed it was drawn with.
    """

    items: np.ndarray
    queries: np.ndarray
    n_clusters: int
    seed: int

    @property
    def ids(self) -> np.ndarray:
        """int64 (n,): the movie ids, 0..n-1."""
        return np.arange(len(self.items), dtype=np.int64)


def make_catalog(n_items: int, dim: int, n_queries: int, seed: int) -> Catalog:
    """Draws a catalog of `n_items` unit vectors and `n_queries` queries (deterministic).

    Args:
        n_items: Catalog size (>= 1).
        dim: Embedding dimension (>= 2).
        n_queries: Number of query vectors (>= 1).
        seed: Seed; the same arguments always give the same arrays.

    Returns:
        The catalog (items (n_items, dim), queries (n_queries, dim), float32).
    """
    if n_items < 1 or n_queries < 1 or dim < 2:
        raise ValueError("need n_items >= 1, n_queries >= 1 and dim >= 2")
    rng = np.random.default_rng([seed, n_items, dim])
    n_clusters = max(1, n_items // ITEMS_PER_CLUSTER)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    items = np.empty((n_items, dim), dtype=np.float32)
    for start in range(0, n_items, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_items)
        items[start:stop] = _draw(rng, centres, stop - start)
    queries = _draw(rng, centres, n_queries)
    return Catalog(items=items, queries=queries, n_clusters=n_clusters, seed=seed)


def _draw(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    rows = centres[rng.integers(0, len(centres), n)]
    rows += CLUSTER_NOISE * rng.standard_normal(rows.shape, dtype=np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def query_batches(queries: np.ndarray, batch_size: int, count: int) -> list[np.ndarray]:
    """`count` batches of `batch_size` query rows, taken cyclically from `queries`.

    Returns:
        `count` float32 arrays of shape (batch_size, dim).
    """
    if batch_size < 1 or count < 1:
        raise ValueError("batch_size and count must be >= 1")
    rows = np.arange(batch_size * count) % len(queries)
    return [queries[rows[i * batch_size : (i + 1) * batch_size]] for i in range(count)]


def exact_top_k(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact maximum-inner-product top-k with numpy (the ground truth for recall).

    Args:
        items: (n, dim) float32.
        queries: (q, dim) float32.
        k: Neighbours per query (clipped to n).

    Returns:
        int64 (q, min(k, n)): row indices of `items`, best first.
    """
    k = min(k, len(items))
    step = max(1, _SCORE_BUDGET // max(1, len(items)))
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), step):
        scores = queries[start : start + step] @ items.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        out[start : start + step] = np.take_along_axis(top, order, axis=1)
    return out


def recall_at(found: np.ndarray | list[list[int]], exact: np.ndarray, k: int) -> float:
    """Mean over queries of |found[:k] & exact[:k]| / k.

    Args:
        found: Per query, ids returned by the index under test, best first (rows may be
            shorter than k when an index returned fewer; missing ones count as misses).
        exact: int (q, >= k) exact ids, best first.
        k: Cut-off (1 <= k <= exact.shape[1]).

    Returns:
        Recall in [0, 1].
    """
    if not 1 <= k <= exact.shape[1]:
        raise ValueError(f"k must be in [1, {exact.shape[1]}], got {k}")
    if len(found) != len(exact):
        raise ValueError(f"{len(found)} result rows for {len(exact)} queries")
    hits = 0
    for row, truth in zip(found, exact, strict=True):
        hits += len({int(i) for i in list(row)[:k]} & {int(i) for i in truth[:k]})
    return hits / (k * len(exact))
