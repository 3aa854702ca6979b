"""The sliding window of distinct ids behind the catalog coverage gauge."""

from __future__ import annotations

import pytest

from deployments.observability.window import SlidingDistinct


def test_counts_distinct_ids_inside_the_window_only() -> None:
    window = SlidingDistinct(10.0)
    window.add([1, 2, 3], now=0.0)
    window.add([3, 4], now=5.0)
    assert window.count(now=5.0) == 4
    assert window.count(now=10.0) == 2  # 1 and 2 were last seen at 0: out of (0, 10]
    window.add([1], now=12.0)
    assert window.count(now=14.9) == 3  # 3, 4 (seen at 5) and 1
    assert window.count(now=15.0) == 1
    assert window.count(now=100.0) == 0


def test_a_movie_seen_again_stays_in_the_window() -> None:
    window = SlidingDistinct(3.0)
    for t in range(10):
        window.add([7], now=float(t))
        window.add([t + 100], now=float(t))
    assert window.count(now=9.0) == 1 + 3  # 7, and the three newest one-offs


def test_rejects_an_empty_window() -> None:
    with pytest.raises(ValueError, match="window_s"):
        SlidingDistinct(0.0)
