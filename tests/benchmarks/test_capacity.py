"""Unit tests of the open-loop capacity search (pure: a fake probe, a fake clock)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from benchmarks.capacity import Criteria, SearchSettings, next_rate, passes, search


def _threshold_probe(capacity: float, calls: list[float]) -> Any:
    def probe(rate: float) -> Mapping[str, Any]:
        calls.append(rate)
        return {"passed": rate <= capacity}

    return probe


def test_passes_needs_both_the_bad_share_and_the_p99() -> None:
    criteria = Criteria(max_bad_share=0.01, p99_budget_ms=150.0)
    assert passes(200, 198, 120.0, criteria) == (True, pytest.approx(0.01))
    assert passes(200, 197, 120.0, criteria)[0] is False  # 1.5% bad
    assert passes(200, 200, 151.0, criteria)[0] is False  # p99 over budget
    assert passes(200, 0, None, criteria) == (False, 1.0)  # no answer at all
    assert passes(0, 0, None, criteria) == (False, 1.0)


def test_geometric_steps_then_bisection() -> None:
    calls: list[float] = []
    settings = SearchSettings(start_rate=10.0, growth=2.0, tolerance=0.1, max_probes=20)
    result = search(_threshold_probe(55.0, calls), settings)
    # up: 10, 20, 40 pass, 80 fails; then geometric midpoints of (40, 80) ...
    assert calls[:4] == [10.0, 20.0, 40.0, 80.0]
    assert calls[4] == pytest.approx((40.0 * 80.0) ** 0.5)  # 56.6: fails
    assert result["stopped_by"] == "tolerance"
    best, worst = result["capacity_rps"], result["lowest_failing_rps"]
    assert best <= 55.0 < worst <= best * 1.1
    assert [p["rate"] for p in result["probes"]] == calls
    assert all(p["passed"] == (p["rate"] <= 55.0) for p in result["probes"])


def test_a_failing_start_steps_down() -> None:
    calls: list[float] = []
    settings = SearchSettings(start_rate=40.0, growth=2.0, tolerance=0.5, max_probes=20)
    result = search(_threshold_probe(7.0, calls), settings)
    assert calls[:4] == [40.0, 20.0, 10.0, 5.0]  # 5 passes: then bisect (5, 10)
    assert 5.0 <= result["capacity_rps"] <= 7.0


def test_nothing_passes_gives_zero() -> None:
    calls: list[float] = []
    settings = SearchSettings(start_rate=4.0, min_rate=1.0, growth=2.0)
    result = search(_threshold_probe(0.5, calls), settings)
    assert calls == [4.0, 2.0, 1.0]
    assert result["capacity_rps"] == 0.0
    assert result["stopped_by"] == "min_rate"


def test_max_rate_bounds_the_search() -> None:
    calls: list[float] = []
    settings = SearchSettings(start_rate=10.0, max_rate=30.0, growth=2.0)
    result = search(_threshold_probe(1e9, calls), settings)
    assert calls == [10.0, 20.0, 30.0]
    assert result == result | {"capacity_rps": 30.0, "stopped_by": "max_rate"}


def test_probe_count_and_time_cap_bound_the_search() -> None:
    calls: list[float] = []
    result = search(_threshold_probe(1e9, calls), SearchSettings(start_rate=1.0, max_probes=3))
    assert len(calls) == 3 and result["stopped_by"] == "probes"

    now = [0.0]

    def clock() -> float:
        now[0] += 5.0  # every reading: 5 s later
        return now[0]

    calls.clear()
    settings = SearchSettings(start_rate=1.0, time_cap_s=12.0, max_probes=50)
    result = search(_threshold_probe(1e9, calls), settings, clock=clock)
    assert result["stopped_by"] == "time"
    # start read at 5; then 10 and 15 (5 and 10 s elapsed: probe), 20 (15 s: stop)
    assert len(calls) == 3


def test_next_rate_stops_within_tolerance() -> None:
    settings = SearchSettings(tolerance=0.1)
    assert next_rate(100.0, True, 100.0, 109.0, settings) == (None, "tolerance")
    rate, why = next_rate(100.0, True, 100.0, 400.0, settings)
    assert rate == pytest.approx(200.0) and why == ""


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_rate": 0.0},
        {"start_rate": 10.0, "max_rate": 5.0},
        {"growth": 1.0},
        {"tolerance": 0.0},
        {"max_probes": 0},
        {"time_cap_s": 0.0},
    ],
)
def test_settings_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SearchSettings(**kwargs)  # type: ignore[arg-type]
