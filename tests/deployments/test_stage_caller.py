"""The stage caller: deadlines inside the budget, fallbacks instead of exceptions."""

from __future__ import annotations

import asyncio

from deployments.budget import Budget
from deployments.common import StageUnavailableError
from deployments.stage_caller import FailureLog, RequestTrace, StageCaller, StageFailure


def test_request_trace() -> None:
    trace = RequestTrace()
    trace.timings["retrieval"] = 1.234
    trace.fail("ranking", "timeout")
    trace.skip("ranking")  # already has its own entry
    trace.skip("content")
    assert [(f.stage, f.reason) for f in trace.fallbacks] == [
        ("ranking", "timeout"),
        ("content", "skipped"),
    ]
    assert trace.reason("content") == "skipped" and trace.reason("features") is None
    assert trace.server_timing().startswith("retrieval;dur=1.23, total;dur=")


def _ask(call: object, timeout: float, budget: Budget | None = None) -> tuple[object, RequestTrace]:
    trace = RequestTrace()
    caller = StageCaller(trace, budget, FailureLog())

    async def run() -> object:
        return await caller.ask("ranking", call, timeout)  # type: ignore[arg-type]

    return asyncio.run(run()), trace


def test_an_answer_is_returned_and_timed() -> None:
    async def answer() -> int:
        return 7

    result, trace = _ask(answer, 1.0)
    assert result == 7 and trace.fallbacks == [] and trace.timings["ranking"] >= 0


def test_a_late_call_is_cancelled_and_becomes_a_timeout_fallback() -> None:
    cancelled = asyncio.Event()

    async def slow() -> int:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    result, trace = _ask(slow, 0.01)
    assert result == StageFailure("timeout") and cancelled.is_set()
    assert [(f.stage, f.reason) for f in trace.fallbacks] == [("ranking", "timeout")]
    assert trace.timings["ranking"] < 1000


def test_a_failing_call_becomes_its_public_reason() -> None:
    async def broken() -> int:
        raise StageUnavailableError("no ranker at /secret/path")

    result, trace = _ask(broken, 1.0)
    assert result == StageFailure("unavailable") and trace.reason("ranking") == "unavailable"


def test_a_spent_budget_skips_the_call() -> None:
    calls: list[int] = []

    async def never() -> int:
        calls.append(1)
        return 1

    clock = iter([0.0, 0.149]).__next__  # started at 0, now 149 ms into a 150 ms budget
    result, trace = _ask(never, 1.0, Budget(0.150, 0.0, clock=clock))
    assert result == StageFailure("no_budget") and calls == []
    assert trace.reason("ranking") == "no_budget"
