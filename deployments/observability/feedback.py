"""Feedback metrics: events posted (by type and outcome), impressions and clicks by
`model_version` (the click-through rate), the impression logs, and the event-to-online lag.

`FeedbackMetrics` is recorded by the Controller (it validates `POST /events`, hands the
events over and logs served lists); `LagMetrics` by the Events deployment's applier, when a
user's features are written online.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence

from deployments.observability import definitions as d
from deployments.observability.backends import MetricsBackend
from deployments.observability.labels import VersionLabels, event_type_label
from movierec.events import Event, IngestResult

CTR_TYPES = frozenset({"impression", "click"})
"""The event types the click-through rate counts (`movierec_feedback_total`)."""


class FeedbackMetrics:
    """The Controller's feedback counters, on any `MetricsBackend`."""

    def __init__(self, backend: MetricsBackend) -> None:
        self.events = backend.counter(d.EVENTS)
        self.feedback = backend.counter(d.FEEDBACK)
        self.impression_logs = backend.counter(d.IMPRESSION_LOGS)
        self._version = VersionLabels()

    def posted(self, types: Sequence[str], result: IngestResult, model_version: str) -> None:
        """A `POST /events` the event log took: each event accepted or duplicate (by index),
        and the accepted impressions and clicks under the version this replica serves."""
        duplicates = set(result.duplicate_indices)
        accepted: Tally[str] = Tally()
        repeated: Tally[str] = Tally()
        for index, kind in enumerate(types):
            (repeated if index in duplicates else accepted)[event_type_label(kind)] += 1
        self._count(accepted, "accepted")
        self._count(repeated, "duplicate")
        self._feedback(accepted, model_version)

    def failed(self, types: Iterable[object], outcome: str) -> None:
        """Events refused: "rejected" (422), "unavailable" (503), "rate_limited" (429)."""
        self._count(Tally(event_type_label(kind) for kind in types), outcome)

    def logged(self, lists: int, impressions: int, model_version: str, outcome: str) -> None:
        """Served lists handed to (or dropped before) the event log as impressions."""
        self.impression_logs.inc(lists, {"outcome": outcome})
        if outcome == "accepted":
            self._feedback(Tally({"impression": impressions}), model_version)

    def _count(self, by_type: Tally[str], outcome: str) -> None:
        for kind, count in by_type.items():
            self.events.inc(count, {"type": kind, "outcome": outcome})

    def _feedback(self, by_type: Tally[str], model_version: str) -> None:
        version = self._version(model_version)
        for kind in CTR_TYPES & by_type.keys():
            self.feedback.inc(by_type[kind], {"type": kind, "model_version": version})


class LagMetrics:
    """The event-to-online lag (the Events deployment's applier calls `observe`)."""

    def __init__(self, backend: MetricsBackend) -> None:
        self.lag = backend.histogram(d.EVENT_LAG)

    def observe(self, event: Event, seconds: float) -> None:
        """An event whose user's features were just written online, `seconds` after its
        receipt."""
        self.lag.observe(max(seconds, 0.0), {"type": event_type_label(event.type)})
