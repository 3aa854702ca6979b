"""What every retrieval method is asked (`QuerySeries`) and the result it reports (`summarize`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.common import percentiles
from benchmarks.scalebench.data import recall_at


@dataclass(frozen=True)
class QuerySeries:
    """The timed query series, the same for every method.

    Attributes:
        k: Neighbours per query.
        batch_size: Queries per batched call.
        batches: Timed batched calls (query rows reused cyclically).
        warmup: Untimed calls before each timed series.
    """

    k: int
    batch_size: int
    batches: int
    warmup: int


def summarize(
    *,
    build_s: float,
    build_cpu_s: float,
    single_ms: Sequence[float],
    batch_ms: Sequence[float],
    found: np.ndarray | list[list[int]],
    exact: np.ndarray,
    k: int,
    bytes_per_item: float,
    memory: dict[str, float],
) -> dict[str, Any]:
    """The result keys every retrieval method reports.

    Args:
        build_s: Index build time in seconds (wall clock).
        build_cpu_s: CPU seconds the build took, across the processes doing it (other work
            on the machine barely changes it, unlike `build_s`).
        single_ms: Latency of each single query (ms).
        batch_ms: Latency of each batched call (ms).
        found: Per query, the ids the method returned, best first.
        exact: Exact top-k ids per query.
        k: Neighbours asked per query.
        bytes_per_item: The method's headline memory per catalog item.
        memory: Memory details per item (bytes).

    Returns:
        build_s, build_cpu_s, single_ms and batch_ms (percentile dicts), recall_at_k, recall_at_10,
        bytes_per_item, memory.
    """
    return {
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "single_ms": percentiles(single_ms),
        "batch_ms": percentiles(batch_ms),
        "recall_at_k": recall_at(found, exact, k),
        "recall_at_10": recall_at(found, exact, min(10, k)),
        "bytes_per_item": bytes_per_item,
        "memory": memory,
    }
