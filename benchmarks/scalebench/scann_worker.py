"""Builds and times a ScaNN index; runs in its own venv (`make scann-venv`), not the project's.

Why a separate process and venv: installing `scann` next to TensorFlow 2.21 breaks
`import tensorflow_recommenders` for the whole project. TFRS imports `scann.scann_ops` when
it is importable, and scann 1.4.2's TensorFlow op library was built against another
TensorFlow (undefined absl symbol), which raises `NotFoundError`, an error TFRS does not
catch. The numpy-only `scann_ops_pybind` API needs no TensorFlow, so it runs here, in a venv
holding only scann and numpy, on arrays handed over as .npy files:

    <venv>/bin/python -m benchmarks.scalebench.scann_worker WORK_DIR

WORK_DIR holds items.npy (n, dim) float32, queries.npy (q, dim) float32, batches.npy
(b, batch_size, dim) float32 and params.json; the worker writes result.json (raw latencies,
build time, memory) and found.npy (q, k) int64 (single-query results, for recall). It
imports nothing but numpy, scann and `benchmarks.common` (standard library only).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import rss_bytes, time_each


def build_searcher(items: np.ndarray, params: dict[str, Any]) -> Any:
    """A ScaNN searcher: tree partitioning, anisotropic hashing, exact re-ordering.

    Args:
        items: float32 (n, dim) catalog.
        params: k, num_leaves, num_leaves_to_search, training_sample_size,
            dims_per_block, anisotropic_quantization_threshold, reorder.
    """
    from scann.scann_ops.py import scann_ops_pybind

    builder = scann_ops_pybind.builder(items, params["k"], "dot_product")
    if params["num_leaves"] > 1:
        builder = builder.tree(
            num_leaves=params["num_leaves"],
            num_leaves_to_search=params["num_leaves_to_search"],
            training_sample_size=params["training_sample_size"],
        )
    builder = builder.score_ah(
        params["dims_per_block"],
        anisotropic_quantization_threshold=params["anisotropic_quantization_threshold"],
    )
    return builder.reorder(params["reorder"]).build()


def run(work_dir: Path) -> dict[str, Any]:
    """Builds the index from WORK_DIR's arrays, times it, writes result.json + found.npy."""
    params = json.loads((work_dir / "params.json").read_text())
    items = np.load(work_dir / "items.npy")
    queries = np.load(work_dir / "queries.npy")
    batches = np.load(work_dir / "batches.npy")
    warmup = int(params["warmup"])

    rss_before = rss_bytes()
    started, started_cpu = time.perf_counter(), time.process_time()
    searcher = build_searcher(items, params)
    build_s, build_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    rss_after = rss_bytes()

    found = np.stack([searcher.search(q)[0] for q in queries]).astype(np.int64)
    single_ms = time_each(searcher.search, list(queries), warmup)
    batch_ms = time_each(searcher.search_batched, list(batches), warmup)

    with tempfile.TemporaryDirectory() as tmp:
        searcher.serialize(tmp)
        serialized = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())

    np.save(work_dir / "found.npy", found)
    result = {
        "scann_version": metadata.version("scann"),
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "single_ms": single_ms,
        "batch_ms": batch_ms,
        "serialized_bytes": serialized,
        "rss_delta_bytes": rss_after - rss_before,
    }
    (work_dir / "result.json").write_text(json.dumps(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build and time a ScaNN index (scale bench).")
    parser.add_argument("work_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        import scann.scann_ops.py.scann_ops_pybind  # noqa: F401
    except ImportError as err:
        print(f"error: scann is not importable in {sys.executable}: {err}", file=sys.stderr)
        return 2
    run(args.work_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
