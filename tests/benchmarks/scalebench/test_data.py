"""Unit tests of the synthetic catalogs, exact top-k and recall (pure numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.scalebench import data
from benchmarks.scalebench.data import (
    ITEMS_PER_CLUSTER,
    exact_top_k,
    make_catalog,
    query_batches,
    recall_at,
)


def test_catalog_is_deterministic_unit_and_clustered() -> None:
    a = make_catalog(1000, 8, 5, seed=3)
    b = make_catalog(1000, 8, 5, seed=3)
    c = make_catalog(1000, 8, 5, seed=4)
    assert a.items.shape == (1000, 8) and a.queries.shape == (5, 8)
    assert a.items.dtype == np.float32 and a.queries.dtype == np.float32
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.queries, b.queries)
    assert not np.array_equal(a.items, c.items)
    np.testing.assert_allclose(np.linalg.norm(a.items, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a.queries, axis=1), 1.0, rtol=1e-5)
    assert a.n_clusters == 1000 // ITEMS_PER_CLUSTER
    np.testing.assert_array_equal(a.ids, np.arange(1000))
    # Clustered, not uniform: an item's nearest neighbour is far closer than a random item.
    sims = a.items[:50] @ a.items.T
    np.fill_diagonal(sims[:, :50], -1)
    assert sims.max(axis=1).mean() > sims.mean(axis=1).mean() + 0.3


def test_catalog_refuses_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_items"):
        make_catalog(0, 8, 1, seed=0)


def test_exact_top_k_matches_a_full_sort_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = make_catalog(300, 6, 17, seed=1)
    expected = np.argsort(-(catalog.queries @ catalog.items.T), axis=1, kind="stable")[:, :25]
    monkeypatch.setattr(data, "_SCORE_BUDGET", 300 * 4)  # 4 queries per chunk
    found = exact_top_k(catalog.items, catalog.queries, 25)
    np.testing.assert_array_equal(found, expected)
    assert exact_top_k(catalog.items[:10], catalog.queries, 25).shape == (17, 10)


def test_recall_counts_overlap_of_the_first_k() -> None:
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at([[1, 2, 3, 4], [8, 7, 6, 5]], exact, 4) == 1.0
    assert recall_at([[4, 3, 9, 9], [5, 9, 9, 9]], exact, 2) == pytest.approx(1 / 4)
    assert recall_at([[1], []], exact, 2) == pytest.approx(1 / 4)  # short rows: misses
    with pytest.raises(ValueError, match="k must be"):
        recall_at([[1], [2]], exact, 5)
    with pytest.raises(ValueError, match="result rows"):
        recall_at([[1]], exact, 1)


def test_query_batches_cycle_over_the_queries() -> None:
    queries = np.arange(10, dtype=np.float32).reshape(5, 2)
    batches = query_batches(queries, 3, 3)
    assert [b.shape for b in batches] == [(3, 2)] * 3
    np.testing.assert_array_equal(batches[1][:, 0], [6, 8, 0])
    with pytest.raises(ValueError, match=">= 1"):
        query_batches(queries, 0, 1)
