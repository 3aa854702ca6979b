"""The request budget: stage deadlines never overrun the total."""

from __future__ import annotations

import pytest

from deployments.budget import MIN_CALL_S, Budget


class Clock:
    """A clock the test moves by hand (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stage_gets_its_own_deadline_while_the_budget_allows_it() -> None:
    clock = Clock()
    budget = Budget(0.150, reserve_s=0.005, clock=clock)
    assert budget.deadline(0.030) == pytest.approx(0.030)
    clock.now += 0.100
    assert budget.remaining() == pytest.approx(0.050)
    # 50 ms left, 5 ms reserved: a 60 ms stage gets 45 ms.
    assert budget.deadline(0.060) == pytest.approx(0.045)


def test_no_call_once_the_budget_is_spent() -> None:
    clock = Clock()
    budget = Budget(0.150, reserve_s=0.005, clock=clock)
    clock.now += 0.150 - 0.005 - MIN_CALL_S / 2
    assert budget.deadline(0.060) is None
    clock.now += 1.0
    assert budget.remaining() < 0 and budget.deadline(1.0) is None


def test_the_budget_counts_from_the_request_start() -> None:
    clock = Clock()
    budget = Budget(0.100, clock=clock, started=clock.now - 0.080)
    assert budget.elapsed() == pytest.approx(0.080)
    assert budget.deadline(0.050) == pytest.approx(0.020)


@pytest.mark.parametrize(("total", "reserve"), [(0.0, 0.0), (-1.0, 0.0), (0.1, 0.1), (0.1, -0.01)])
def test_invalid_budgets_are_refused(total: float, reserve: float) -> None:
    with pytest.raises(ValueError, match=r"budget|reserve"):
        Budget(total, reserve_s=reserve)


def test_a_tiny_stage_deadline_is_the_stage_s_own_not_a_spent_budget() -> None:
    budget = Budget(0.150, clock=Clock())
    assert budget.deadline(1e-4) == pytest.approx(1e-4)  # called, and will time out
