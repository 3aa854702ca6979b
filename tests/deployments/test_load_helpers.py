"""The end-to-end tests' load helpers (`tests/deployments/_load.py`): what they count."""

from __future__ import annotations

from tests.deployments._load import (
    Outcome,
    recovered_at,
    server_seconds,
    unexpected_fallbacks,
)


def test_server_seconds_reads_the_total_of_server_timing() -> None:
    assert server_seconds("retrieval;dur=12.50, total;dur=40.00") == 0.04
    assert server_seconds("retrieval;dur=12.50") is None
    assert server_seconds("") is None


def _answer(sent: float, *fallbacks: tuple[str, str]) -> Outcome:
    return Outcome(sent, 0.01, 200, bool(fallbacks), tuple(fallbacks))


def test_only_fallbacks_a_slow_machine_cannot_cause_are_unexpected() -> None:
    outcomes = [
        _answer(0.0, ("features", "timeout"), ("ranking", "skipped")),
        _answer(1.0, ("ranking", "no_budget")),
        _answer(2.0, ("ranking", "error"), ("content", "unavailable")),
    ]
    assert unexpected_fallbacks(outcomes) == {
        ("ranking", "error"): 1,
        ("content", "unavailable"): 1,
    }
    allowed = {"content": frozenset({"unavailable"}), "features": frozenset()}
    assert unexpected_fallbacks(outcomes, allowed) == {
        ("features", "timeout"): 1,
        ("ranking", "error"): 1,
    }


def test_recovered_at_is_the_first_of_a_run_of_answers_without_the_stages() -> None:
    down = ("features", "unavailable")
    outcomes = [_answer(0.0, down), _answer(1.0), _answer(2.0, down)]
    outcomes += [_answer(3.0), _answer(4.0, ("ranking", "timeout")), _answer(5.0)]
    assert recovered_at(outcomes, frozenset({down}), run=3) == 3.0
    assert recovered_at(outcomes, frozenset({"features", "ranking"}), run=3) is None
