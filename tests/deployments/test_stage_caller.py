"""The stage caller: deadlines inside the budget, fallbacks instead of exceptions."""

from __future__ import annotations

import asyncio
import time

from ray.exceptions import ActorDiedError, ActorUnavailableError
from ray.serve.exceptions import DeploymentUnavailableError

from deployments.budget import Budget
from deployments.common import StageUnavailableError
from deployments.stage_caller import (
    FailureLog,
    RequestTrace,
    StageCaller,
    StageFailure,
    replica_lost,
)


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


def _retrying(
    attempts: list[BaseException | int], timeout: float = 1.0
) -> tuple[object, int, RequestTrace]:
    """Asks with `retry_on=replica_lost` a call whose successive attempts raise or answer
    `attempts` in order (a float is a delay in seconds before the next item); returns the
    result, the number of calls and the trace."""
    calls = 0
    trace = RequestTrace()
    caller = StageCaller(trace, None, FailureLog())

    async def call() -> int:
        nonlocal calls
        outcome = attempts[calls]
        calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def run() -> object:
        return await caller.ask("ranking", call, timeout, retry_on=replica_lost)

    return asyncio.run(run()), calls, trace


def test_a_dead_replica_is_retried_once() -> None:
    for lost in (
        ActorDiedError(),
        ActorUnavailableError("gone", None),
        DeploymentUnavailableError("x"),
    ):
        result, calls, trace = _retrying([lost, 7])
        assert (result, calls, trace.fallbacks, trace.retried) == (7, 2, [], ["ranking"])


def test_only_once_and_the_second_failure_is_the_fallback() -> None:
    result, calls, trace = _retrying([ActorDiedError(), ActorDiedError(), 7])
    assert (result, calls) == (StageFailure("unavailable"), 2)
    assert trace.reason("ranking") == "unavailable" and trace.retried == ["ranking"]


def test_timeouts_and_the_stages_own_errors_are_not_retried() -> None:
    for error, reason in (
        (TimeoutError(), "timeout"),
        (StageUnavailableError("Redis down"), "unavailable"),
        (ValueError("bad input"), "error"),
    ):
        result, calls, trace = _retrying([error, 7])
        assert (result, calls, trace.retried) == (StageFailure(reason), 1, [])


def test_the_retry_shares_the_first_attempts_deadline() -> None:
    started = time.perf_counter()
    trace = RequestTrace()
    caller = StageCaller(trace, None, None)

    async def dies_then_hangs() -> int:
        if not trace.retried:
            await asyncio.sleep(0.05)
            raise ActorDiedError()
        await asyncio.sleep(10)
        return 1

    async def run() -> object:
        return await caller.ask("ranking", dies_then_hangs, 0.1, retry_on=replica_lost)

    assert asyncio.run(run()) == StageFailure("timeout")
    assert trace.retried == ["ranking"] and time.perf_counter() - started < 1.0


def test_without_retry_on_a_dead_replica_is_a_fallback() -> None:
    result, trace = _ask(_raises(ActorDiedError()), 1.0)
    assert result == StageFailure("unavailable") and trace.retried == []


def _raises(exc: BaseException) -> object:
    async def call() -> int:
        raise exc

    return call
