"""Approximate retrieval with ScaNN, measured in a subprocess of the ScaNN venv.

See `benchmarks.scalebench.scann_worker` for why ScaNN cannot share the project's venv. This
side writes the arrays, runs the worker, and turns its raw latencies into the same result
keys as the other methods.

Parameters follow ScaNN's own recipe for a catalog of n items: about sqrt(n) partitions,
a tenth of them searched per query, anisotropic hashing with 2 dimensions per block, and the
best 4k candidates re-scored exactly.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.scalebench.data import Catalog, query_batches
from benchmarks.scalebench.series import QuerySeries, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCANN_PYTHON = REPO_ROOT / ".venv-scann" / "bin" / "python"
LEAVES_SEARCHED = 0.1
REORDER_FACTOR = 4
TRAINING_SAMPLE = 250_000


class ScannUnavailableError(RuntimeError):
    """The ScaNN venv is missing or its worker failed."""


def scann_params(n_items: int, k: int) -> dict[str, Any]:
    """ScaNN build parameters for a catalog of `n_items` and top-`k` queries.

    Returns:
        k, num_leaves (~sqrt(n); 1 = no partitioning below 1000 items), num_leaves_to_search,
        training_sample_size, dims_per_block, anisotropic_quantization_threshold, reorder.
    """
    leaves = max(1, round(math.sqrt(n_items))) if n_items >= 1000 else 1
    return {
        "k": k,
        "num_leaves": leaves,
        "num_leaves_to_search": max(1, round(leaves * LEAVES_SEARCHED)),
        "training_sample_size": min(n_items, TRAINING_SAMPLE),
        "dims_per_block": 2,
        "anisotropic_quantization_threshold": 0.2,
        "reorder": min(n_items, REORDER_FACTOR * k),
    }


def check_scann_python(python: Path) -> str:
    """Returns the scann version of the venv at `python`.

    Raises:
        ScannUnavailableError: The interpreter is missing or cannot import scann.
    """
    if not python.exists():
        raise ScannUnavailableError(
            f"no ScaNN venv at {python}: run `make scann-venv` (or pass --no-scann)"
        )
    probe = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('scann'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise ScannUnavailableError(f"{python} has no scann: {probe.stderr.strip()[-500:]}")
    return probe.stdout.strip()


def measure_scann(
    catalog: Catalog,
    exact: np.ndarray,
    series: QuerySeries,
    *,
    python: Path = DEFAULT_SCANN_PYTHON,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Builds a ScaNN index of the catalog in the worker and times it.

    Args:
        catalog: Items (n, dim) and queries (q, dim).
        exact: int64 (q, >= min(k, n)) exact top-k ids, for recall.
        series: k, batch size (batches run through `search_batched`, one thread), number of
            batches, warm-up calls.
        python: Interpreter of the ScaNN venv.
        timeout_s: Seconds the worker may take.

    Returns:
        `summarize`'s keys (bytes_per_item: the serialized index), the build params and the
        scann version.

    Raises:
        ScannUnavailableError: The worker failed or timed out.
    """
    k = min(series.k, len(catalog.items))
    params = scann_params(len(catalog.items), k) | {"warmup": series.warmup}
    with tempfile.TemporaryDirectory(prefix="scale-scann-") as tmp:
        work = Path(tmp)
        np.save(work / "items.npy", catalog.items)
        np.save(work / "queries.npy", catalog.queries)
        np.save(
            work / "batches.npy",
            np.stack(query_batches(catalog.queries, series.batch_size, series.batches)),
        )
        (work / "params.json").write_text(json.dumps(params))
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        try:
            done = subprocess.run(
                [str(python), "-m", "benchmarks.scalebench.scann_worker", str(work)],
                cwd=REPO_ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise ScannUnavailableError(f"ScaNN worker took over {timeout_s:.0f}s") from err
        if done.returncode != 0:
            tail = done.stderr.strip()[-2000:]
            raise ScannUnavailableError(f"ScaNN worker exited with {done.returncode}: {tail}")
        raw = json.loads((work / "result.json").read_text())
        found = np.load(work / "found.npy")
    n = len(catalog.items)
    params.pop("warmup")
    return summarize(
        build_s=raw["build_s"],
        build_cpu_s=raw["build_cpu_s"],
        single_ms=raw["single_ms"],
        batch_ms=raw["batch_ms"],
        found=found,
        exact=exact,
        k=k,
        bytes_per_item=raw["serialized_bytes"] / n,
        memory={
            "serialized_bytes_per_item": raw["serialized_bytes"] / n,
            "rss_delta_bytes_per_item": raw["rss_delta_bytes"] / n,
        },
    ) | {"params": params, "scann_version": raw["scann_version"]}
