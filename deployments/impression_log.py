"""Server-side impression logging: the personal lists the Controller served, as impression
events, through the Events deployment (`user_config.impressions.log_served`, off by default).

Never on the request path: `observe` (a `RequestObserver`, after the answer is built) only
puts the list in a bounded in-memory queue (`put_nowait`); past `log_queue` waiting lists it
drops the list and counts it (`movierec_impression_logs_total{outcome="dropped"}`). One
background task per Controller replica drains the queue in batches of at most `MAX_EVENTS`
events and hands them to the Events stage, which logs them like posted events (durably, then
the applier folds them into the user's impressions). Lists lost with a replica's queue are
impressions not counted: the rule then demotes a little later, nothing else.

Cold-start answers are not logged: an impression would give the unknown user a feature row
and make their next request personal before they did anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from deployments.observability.feedback import FeedbackMetrics
from deployments.schemas import RecommendationResponse
from deployments.service import RequestTrace
from deployments.stages import EventsStage
from movierec.events import MAX_EVENTS, Event, RateLimitedError

logger = logging.getLogger(__name__)

CLIENT_ID = "controller-impressions"
"""The rate limit's client of the impression logs (not the anonymous clients' budget)."""


@dataclass(frozen=True, slots=True)
class ServedList:
    """One answer to log: who saw which movies, when, from which model version."""

    user_id: int
    movie_ids: tuple[int, ...]
    shown_at: float
    model_version: str


class ImpressionLog:
    """Queues served lists and logs them as impressions in the background."""

    def __init__(
        self,
        events: EventsStage,
        metrics: FeedbackMetrics,
        capacity: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._events = events
        self._metrics = metrics
        self._clock = clock
        self.enabled = False
        self.capacity = capacity
        self._queue: deque[ServedList] = deque()
        self._task: asyncio.Task[None] | None = None

    def configure(self, enabled: bool, capacity: int) -> None:
        """Turns logging on or off, and sets the queue's capacity (lists)."""
        self.enabled = enabled
        self.capacity = capacity

    @property
    def queued(self) -> int:
        """Lists waiting to be logged."""
        return len(self._queue)

    def observe(self, trace: RequestTrace, response: RecommendationResponse) -> None:
        """Queues a personal answer (`RequestObserver`); never waits."""
        if not self.enabled or response.cold_start or not response.items:
            return
        served = ServedList(
            response.user_id,
            tuple(item.movie_id for item in response.items),
            self._clock(),
            response.model_version,
        )
        if len(self._queue) >= self.capacity:
            self._metrics.logged(1, len(served.movie_ids), served.model_version, "dropped")
            return
        self._queue.append(served)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Logs queued lists until the queue is empty (the next `observe` restarts it)."""
        while self._queue:
            batch = [self._queue.popleft()]
            size = len(batch[0].movie_ids)
            while self._queue and size + len(self._queue[0].movie_ids) <= MAX_EVENTS:
                batch.append(self._queue.popleft())
                size += len(batch[-1].movie_ids)
            await self.log(batch)

    async def log(self, batch: list[ServedList]) -> None:
        """Hands one batch to the Events stage; counts the outcome per model version."""
        now = self._clock()
        events = [
            Event(served.user_id, movie_id, "impression", None, served.shown_at, now)
            for served in batch
            for movie_id in served.movie_ids
        ]
        outcome = "accepted"
        try:
            await self._events.ingest(events, CLIENT_ID)
        except RateLimitedError:
            outcome = "rate_limited"
        except Exception as exc:  # the log is down: these impressions are not counted
            logger.warning("impressions not logged: %s", type(exc).__name__)
            outcome = "unavailable"
        for served in batch:
            self._metrics.logged(1, len(served.movie_ids), served.model_version, outcome)

    async def close(self) -> None:
        """Stops the background task (lists still queued are not logged)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
