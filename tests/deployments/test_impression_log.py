"""Server-side impression logging: bounded, in the background, batches of at most 500 events,
every outcome counted (an in-process Events stage: no Redis needed for this logic)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from deployments.impression_log import CLIENT_ID, ImpressionLog
from deployments.observability.backends import PrometheusClientBackend
from deployments.observability.feedback import FeedbackMetrics
from deployments.schemas import RecommendationResponse
from deployments.service import RequestTrace
from movierec.events import Event, ForgetResult, IngestResult, RateLimitedError


class Events:
    """Records what it is handed; `fail` makes it raise."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[Event], str]] = []
        self.fail: Exception | None = None

    async def ingest(self, events: Sequence[Event], client_id: str = "anonymous") -> IngestResult:
        self.batches.append((list(events), client_id))
        if self.fail is not None:
            raise self.fail
        return IngestResult(len(events), 0)

    async def forget(self, user_id: int) -> ForgetResult:
        return ForgetResult(0, 0)

    async def health(self) -> dict[str, object]:
        return {"status": "ok", "pid": 1, "detail": {}}


def _answer(user_id: int, movies: range, cold_start: bool = False) -> RecommendationResponse:
    items = [{"movie_id": m, "title": f"M{m}", "genres": [], "score": 1.0} for m in movies]
    return RecommendationResponse.model_validate(
        {
            "user_id": user_id,
            "items": [{**item, "sources": ["retrieval"]} for item in items],
            "model_version": "v7",
            "cold_start": cold_start,
            "degraded": False,
            "fallbacks": [],
        }
    )


def _logs(backend: PrometheusClientBackend, outcome: str) -> float | None:
    return backend.registry.get_sample_value("movierec_impression_logs_total", {"outcome": outcome})


def test_served_lists_are_logged_in_batches_and_overflow_is_dropped() -> None:
    backend, events = PrometheusClientBackend(), Events()
    log = ImpressionLog(events, FeedbackMetrics(backend), clock=lambda: 1000.0)

    async def scenario() -> None:
        log.observe(RequestTrace(), _answer(1, range(1, 11)))  # off by default: nothing
        assert log.queued == 0
        log.configure(True, 60)
        log.observe(RequestTrace(), _answer(2, range(1, 11), cold_start=True))  # not logged
        for user in range(62):  # no await in between: the background task has not run
            log.observe(RequestTrace(), _answer(user + 1, range(1, 11)))
        assert log.queued == 60
        for _ in range(10):
            await asyncio.sleep(0)

    asyncio.run(scenario())
    sizes = [len(batch) for batch, _ in events.batches]
    assert sizes == [500, 100]  # 60 lists of 10 movies, at most 500 events per call
    first = events.batches[0][0][0]
    assert (first.user_id, first.movie_id, first.type, first.timestamp) == (
        1,
        1,
        "impression",
        1000.0,
    )
    assert {client for _, client in events.batches} == {CLIENT_ID}
    assert _logs(backend, "accepted") == 60 and _logs(backend, "dropped") == 2
    served = backend.registry.get_sample_value(
        "movierec_feedback_total", {"type": "impression", "model_version": "v7"}
    )
    assert served == 600


def test_a_failed_or_limited_log_is_counted_not_raised() -> None:
    backend, events = PrometheusClientBackend(), Events()
    log = ImpressionLog(events, FeedbackMetrics(backend))
    log.configure(True, 10)

    async def once(error: Exception) -> None:
        events.fail = error
        log.observe(RequestTrace(), _answer(1, range(1, 4)))
        for _ in range(5):
            await asyncio.sleep(0)

    asyncio.run(once(RateLimitedError(1)))
    asyncio.run(once(ConnectionError("redis down")))
    assert _logs(backend, "rate_limited") == 1 and _logs(backend, "unavailable") == 1
    assert _logs(backend, "accepted") is None
