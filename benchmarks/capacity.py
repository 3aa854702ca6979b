"""Pure logic of the open-loop capacity search: what passes, and which rate to try next.

A system's *fully personalized capacity* is the highest fixed arrival rate (requests started
on a schedule, whatever the answers do) at which at most `max_bad_share` of the requests are
degraded or failed and the p99 latency stays within the request budget. `search` finds it
with one probe per rate: geometric steps up from `start_rate` (or down, if that already
fails) until the first failure, then bisection (geometric midpoints) between the highest
passing and the lowest failing rate, bounded in probes and in time.

The probe itself (`benchmarks.openloop`) is injected, so the search is tested on fakes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Criteria:
    """When a probe passes.

    Attributes:
        max_bad_share: Degraded or failed requests over all the requests the probe offered.
        p99_budget_ms: The p99 latency of the answers must not exceed this (the Controller's
            `timeouts.total`).
    """

    max_bad_share: float = 0.01
    p99_budget_ms: float = 150.0


def passes(offered: int, good: int, p99_ms: float | None, criteria: Criteria) -> tuple[bool, float]:
    """(whether a probe passes, its bad share).

    Args:
        offered: Requests the probe scheduled in its recorded window.
        good: Of those, answers with HTTP 200 and no fallback.
        p99_ms: p99 latency of its HTTP 200 answers (None without any).
        criteria: The thresholds.

    Example: 200 offered, 198 good, p99 120 ms -> (True, 0.01) with the default criteria.
    """
    if offered <= 0:
        return False, 1.0
    bad = (offered - good) / offered
    ok = p99_ms is not None and p99_ms <= criteria.p99_budget_ms
    return bool(ok and bad <= criteria.max_bad_share + 1e-12), bad


@dataclass(frozen=True)
class SearchSettings:
    """How far and how finely to search.

    Attributes:
        start_rate: First rate tried, requests/s.
        growth: Factor between rates before the first failure (and below a failing start).
        min_rate: Below this the search gives up (capacity 0).
        max_rate: Never offer more than this.
        tolerance: Stop when the lowest failing rate is within this fraction above the
            highest passing one.
        max_probes: At most this many probes.
        time_cap_s: No new probe once this long has passed since the first.
    """

    start_rate: float = 20.0
    growth: float = 2.0
    min_rate: float = 1.0
    max_rate: float = 2000.0
    tolerance: float = 0.1
    max_probes: int = 12
    time_cap_s: float = 180.0

    def __post_init__(self) -> None:
        if not 0 < self.min_rate <= self.start_rate <= self.max_rate:
            raise ValueError("need 0 < min_rate <= start_rate <= max_rate")
        if self.growth <= 1.0 or self.tolerance <= 0 or self.max_probes < 1:
            raise ValueError("need growth > 1, tolerance > 0, max_probes >= 1")
        if self.time_cap_s <= 0:
            raise ValueError("need time_cap_s > 0")


def next_rate(
    rate: float, passed: bool, best: float | None, worst: float | None, s: SearchSettings
) -> tuple[float | None, str]:
    """The next rate to probe after `rate` (None to stop) and why the search would stop.

    Args:
        rate: The rate just probed.
        passed: Whether it passed.
        best: Highest passing rate so far (including `rate`), or None.
        worst: Lowest failing rate so far (including `rate`), or None.
        s: The settings.
    """
    if best is not None and worst is not None:
        if worst <= best * (1.0 + s.tolerance):
            return None, "tolerance"
        return math.sqrt(best * worst), ""
    if passed:
        if rate >= s.max_rate:
            return None, "max_rate"
        return min(rate * s.growth, s.max_rate), ""
    lower = rate / s.growth
    if lower < s.min_rate:
        return None, "min_rate"
    return lower, ""


def search(
    probe: Callable[[float], Mapping[str, Any]],
    settings: SearchSettings,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Finds the capacity (see the module doc).

    Args:
        probe: Runs one probe at a rate (requests/s); returns at least {"passed": bool}.
        settings: The search's bounds.
        clock: Seconds (injected by tests).

    Returns:
        {"capacity_rps" (highest passing rate, 0.0 when none passed), "lowest_failing_rps"
        (None when none failed), "stopped_by" ("tolerance", "max_rate", "min_rate",
        "probes" or "time"), "probes" (each probe's result with its "rate", in order),
        "settings"}.
    """
    started = clock()
    probes: list[dict[str, Any]] = []
    best: float | None = None
    worst: float | None = None
    rate: float | None = settings.start_rate
    stopped_by = "probes"
    while rate is not None:
        if len(probes) >= settings.max_probes:
            stopped_by = "probes"
            break
        if probes and clock() - started >= settings.time_cap_s:
            stopped_by = "time"
            break
        result = dict(probe(rate))
        result["rate"] = rate
        probes.append(result)
        passed = bool(result["passed"])
        if passed:
            best = rate if best is None else max(best, rate)
        else:
            worst = rate if worst is None else min(worst, rate)
        rate, stopped_by = next_rate(rate, passed, best, worst, settings)
    return {
        "capacity_rps": best or 0.0,
        "lowest_failing_rps": worst,
        "stopped_by": stopped_by,
        "probes": probes,
        "settings": asdict(settings),
    }
