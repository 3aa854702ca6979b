"""The time budget of one request: per-stage deadlines that never overrun the total.

Every stage call gets `min(its own deadline, what is left of the total budget - reserve)`,
where the reserve keeps time for what follows the last call (merging, rules, the response).
Once less than `MIN_CALL_S` of the budget is left, a stage is not called at all (fallback
reason `no_budget`): a call that cannot finish only wastes a replica slot.

Pure: no Ray, no I/O; the clock is injectable for tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

MIN_CALL_S = 0.002
"""A stage call given less than this (seconds) is skipped instead."""


class Budget:
    """What is left of one request's total time budget.

    Args:
        total_s: The whole request's budget, in seconds.
        reserve_s: Kept back from every stage deadline for the work after the last call.
        clock: Monotonic clock in seconds (`time.perf_counter` by default).
        started: Clock reading at the start of the request (now by default).
    """

    def __init__(
        self,
        total_s: float,
        reserve_s: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
        started: float | None = None,
    ) -> None:
        if total_s <= 0:
            raise ValueError(f"total budget must be > 0 s, got {total_s}")
        if not 0 <= reserve_s < total_s:
            raise ValueError(f"reserve must be in [0, total) s, got {reserve_s} of {total_s}")
        self.total_s = total_s
        self.reserve_s = reserve_s
        self._clock = clock
        self._started = clock() if started is None else started

    def elapsed(self) -> float:
        """Seconds since the request started."""
        return self._clock() - self._started

    def remaining(self) -> float:
        """Seconds left of the total budget (negative once overrun)."""
        return self.total_s - self.elapsed()

    def deadline(self, stage_timeout_s: float) -> float | None:
        """The timeout of a stage call starting now, or None when it is not worth calling.

        Args:
            stage_timeout_s: The stage's own deadline, in seconds.

        Returns:
            min(stage deadline, remaining - reserve) in seconds; None when what is left of
            the budget (after the reserve) is below `MIN_CALL_S`.
        """
        left = self.remaining() - self.reserve_s
        return min(stage_timeout_s, left) if left >= MIN_CALL_S else None


__all__ = ["MIN_CALL_S", "Budget"]
