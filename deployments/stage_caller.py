"""How the Controller calls a stage: a deadline inside the request's budget, a trace entry,
and a failure turned into a fallback instead of an exception.

`StageCaller.ask(stage, call)` runs `call()` (a stage method through its Protocol) with the
stage's deadline (`ControllerConfig.timeouts.<stage>`, shortened by what is left of the
request's `Budget`); a late or failed call is cancelled, recorded in the `RequestTrace` as a
`Fallback` (stage + a public `FallbackReason`) and answered as a `StageFailure`. An idempotent
call whose replica died under it (`replica_lost`) is made once more, within the same deadline:
Serve's router has marked that replica dead, so the retry goes to another one (or waits for
the replacement until the deadline).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ray.exceptions import RayActorError
from ray.serve.exceptions import DeploymentUnavailableError

from deployments.budget import Budget
from deployments.common import describe, public_reason
from deployments.schemas import Fallback, FallbackReason

T = TypeVar("T")

logger = logging.getLogger(__name__)


def replica_lost(exc: BaseException) -> bool:
    """The call failed because its replica died or cannot be reached (`ActorDiedError`,
    gRPC handles' `ActorUnavailableError`, both `RayActorError`s) or the deployment has no
    replica (`DeploymentUnavailableError`): the stage never answered, so asking again is safe
    for a read. Not a timeout, not the stage's own error."""
    return isinstance(exc, RayActorError | DeploymentUnavailableError)


class RequestTrace:
    """What happened inside one request: stage timings, fallbacks, candidates, scores.

    Attributes:
        fallbacks: Stages that failed or were skipped, with a public reason.
        timings: Stage name -> wall time of its call, in milliseconds.
        candidates: Source name -> candidates it proposed (after the seen filter).
        merged: Distinct candidates after merging the sources.
        overlap: Candidates proposed by more than one source.
        ranked_scores: The ranker's scores of every ranked candidate (empty without ranking).
        retried: Stages called a second time because their replica was lost.
        started: `time.perf_counter()` at the start of the request, in seconds.
    """

    def __init__(self) -> None:
        self.fallbacks: list[Fallback] = []
        self.timings: dict[str, float] = {}
        self.candidates: dict[str, int] = {}
        self.merged = 0
        self.overlap = 0
        self.ranked_scores: list[float] = []
        self.retried: list[str] = []
        self.started = time.perf_counter()

    def fail(self, stage: str, reason: FallbackReason) -> None:
        """Records a stage whose output is not used, and why (a `FallbackReason`)."""
        self.fallbacks.append(Fallback.model_validate({"stage": stage, "reason": reason}))

    def skip(self, stage: str) -> None:
        """Records a stage whose output is not used because another one failed (unless
        it already has a fallback entry of its own, e.g. it had timed out)."""
        if all(f.stage != stage for f in self.fallbacks):
            self.fail(stage, "skipped")

    def reason(self, stage: str) -> FallbackReason | None:
        """The recorded fallback reason of `stage`, if any."""
        return next((f.reason for f in self.fallbacks if f.stage == stage), None)

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started."""
        return 1000.0 * (time.perf_counter() - self.started)

    def server_timing(self) -> str:
        """The `Server-Timing` header value (milliseconds per stage, and in total)."""
        parts = [f"{stage};dur={ms:.2f}" for stage, ms in self.timings.items()]
        parts.append(f"total;dur={self.elapsed_ms():.2f}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class StageFailure:
    """A stage call whose answer is not used (the reason is in the trace)."""

    reason: FallbackReason


class FailureLog:
    """Logs a stage failure with its detail, at most once per `every_s` per stage."""

    def __init__(self, every_s: float = 10.0) -> None:
        self._every_s = every_s
        self._last: dict[str, float] = {}

    def record(self, stage: str, detail: str) -> None:
        """Logs `detail` unless `stage` was logged less than `every_s` ago."""
        now = time.monotonic()
        if now - self._last.get(stage, float("-inf")) >= self._every_s:
            self._last[stage] = now
            logger.warning("stage %s failed: %s", stage, detail)


class StageCaller:
    """Runs one request's stage calls within their deadlines and records what happened.

    Args:
        trace: Receives every call's timing and, on failure, a fallback entry.
        budget: The request's total budget (None for calls outside a recommendation,
            which then only have their own deadline).
        failures: Where failures are logged (None: not logged, e.g. health probes).
    """

    def __init__(
        self, trace: RequestTrace, budget: Budget | None, failures: FailureLog | None
    ) -> None:
        self.trace = trace
        self._budget = budget
        self._failures = failures

    async def ask(
        self,
        stage: str,
        call: Callable[[], Awaitable[T]],
        timeout: float,
        retry_on: Callable[[BaseException], bool] | None = None,
    ) -> T | StageFailure:
        """`await call()` within `timeout` seconds (shortened to fit the budget).

        Args:
            stage: The stage's name (trace, fallbacks, logs).
            call: Starts the stage call; not called at all when the budget is spent
                (reason `no_budget`).
            timeout: The stage's own deadline, in seconds; the call is cancelled when it
                passes (reason `timeout`).
            retry_on: For an idempotent call: an exception for which `call()` is made once
                more (e.g. `replica_lost`), inside the same deadline.

        Returns:
            The stage's answer, or a `StageFailure` (also recorded in the trace).
        """
        if self._budget is not None:
            allowed = self._budget.deadline(timeout)
            if allowed is None:
                self.trace.fail(stage, "no_budget")
                return StageFailure("no_budget")
            timeout = allowed
        started = time.perf_counter()
        reason: FallbackReason
        try:
            return await asyncio.wait_for(self._attempts(stage, call, retry_on), timeout)
        except TimeoutError:
            reason, detail = "timeout", f"timeout after {1000 * timeout:.0f} ms"
        except Exception as exc:
            reason, detail = public_reason(exc), describe(exc)
        finally:
            self.trace.timings[stage] = 1000.0 * (time.perf_counter() - started)
        self.trace.fail(stage, reason)  # what the client sees: a category, no paths or messages
        if self._failures is not None:
            self._failures.record(stage, detail)
        return StageFailure(reason)

    async def _attempts(
        self,
        stage: str,
        call: Callable[[], Awaitable[T]],
        retry_on: Callable[[BaseException], bool] | None,
    ) -> T:
        """`call()`, and once more if the first attempt failed with a `retry_on` error."""
        try:
            return await call()
        except Exception as exc:
            if retry_on is None or not retry_on(exc):
                raise
        self.trace.retried.append(stage)
        return await call()
