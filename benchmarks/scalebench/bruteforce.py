"""Exact retrieval with TFRS `BruteForce`, the layer the exported retrieval model serves with.

The layer indexes the candidate matrix and identifiers exactly as
`models.retrieval.export.RetrievalModule` does, and is called through a `tf.function` with a
[None, dim] input signature, as the SavedModel's signature calls it. The query tower is left
out (the benchmark feeds query embeddings directly): what is timed is the dot product over
the whole catalog plus the top-k, the part whose cost grows with the catalog.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from benchmarks.common import rss_bytes, time_each
from benchmarks.scalebench.data import Catalog, query_batches
from benchmarks.scalebench.series import QuerySeries, summarize
from models.tensorflow_env import tf, tfrs


def measure_bruteforce(catalog: Catalog, exact: np.ndarray, series: QuerySeries) -> dict[str, Any]:
    """Builds a BruteForce index of the catalog and times single and batched queries.

    Args:
        catalog: Items (n, dim) and queries (q, dim).
        exact: int64 (q, >= min(k, n)) exact top-k ids from numpy, for the recall check.
        series: k, batch size, number of batches, warm-up calls.

    Returns:
        `summarize`'s keys; recall against numpy is 1.0 unless float rounding swaps
        near-ties; bytes_per_item counts the index tensors (float32 candidates, int64 ids).
    """
    k = min(series.k, len(catalog.items))
    rss_before = rss_bytes()
    started, started_cpu = time.perf_counter(), time.process_time()
    layer = tfrs.layers.factorized_top_k.BruteForce(k=k)
    layer.index(tf.constant(catalog.items), tf.constant(catalog.ids))
    dim = catalog.items.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, dim], tf.float32)])
    def search(queries: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return layer(queries, k=k)

    search(tf.constant(catalog.queries[:1]))  # traces the graph
    build_s, build_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    rss_after = rss_bytes()

    singles = [tf.constant(q[None, :]) for q in catalog.queries]
    found = [search(q)[1].numpy()[0] for q in singles]
    single_ms = time_each(search, singles, series.warmup)
    groups = query_batches(catalog.queries, series.batch_size, series.batches)
    batch_ms = time_each(search, [tf.constant(b) for b in groups], series.warmup)

    n = len(catalog.items)
    tensor_bytes = catalog.items.nbytes + catalog.ids.nbytes
    return summarize(
        build_s=build_s,
        build_cpu_s=build_cpu_s,
        single_ms=single_ms,
        batch_ms=batch_ms,
        found=found,
        exact=exact,
        k=k,
        bytes_per_item=tensor_bytes / n,
        memory={
            "tensor_bytes_per_item": tensor_bytes / n,
            "rss_delta_bytes_per_item": (rss_after - rss_before) / n,
        },
    )
