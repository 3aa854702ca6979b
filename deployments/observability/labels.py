"""Bounded label vocabularies, and the functions that map raw values onto them.

A Prometheus label value creates a time series; a free-text or per-user value creates one per
distinct value, without bound. Every label of `definitions` is therefore drawn from a closed
vocabulary here: raw stage names, fallback reasons and genres are mapped onto it, and anything
unexpected becomes `OTHER` instead of a new series.
"""

from __future__ import annotations

from collections.abc import Iterable

from deployments.schemas import FALLBACK_REASONS
from movierec.events import EVENT_TYPES
from movierec.stages import SOURCES

OTHER = "other"
"""The label value of anything outside a vocabulary."""

STAGES: tuple[str, ...] = (
    "retrieval",
    "content",
    "itemcf",
    "features",
    "ranking",
    "rules",
    "total",
    OTHER,
)
"""`stage` label values: the stage calls and in-process steps of a request, and `total`
(the same names as the API's `fallbacks[].stage`)."""

REASONS: tuple[str, ...] = (*FALLBACK_REASONS, OTHER)
"""`reason` label values of a fallback: the API's `FallbackReason` categories (see
`reason_label`)."""

EVENT_TYPE_LABELS: tuple[str, ...] = (*EVENT_TYPES, OTHER)
"""`type` label values: the feedback event types (an invalid type of a rejected event:
"other")."""

OUTCOMES: tuple[str, ...] = (
    "accepted",
    "duplicate",
    "rejected",
    "unavailable",
    "rate_limited",
    "dropped",
    OTHER,
)
"""`outcome` label values of posted events and of impression logs: logged; a repeated
event_id; refused with 422; the event log unavailable (503); over the rate (429); an
impression log the Controller's queue had no room for."""

MAX_VERSIONS = 8
"""At most this many `model_version` label values per process; later ones are "other"."""

MAX_GENRES = 40
"""At most this many genre label values (MovieLens has 19 or 20); the rest is `OTHER`."""


def stage_label(stage: str) -> str:
    """The `stage` label of a stage name (unknown: "other")."""
    return stage if stage in STAGES else OTHER


def reason_label(reason: str) -> str:
    """The `reason` category of a fallback reason as the API reports it.

    The API's reasons are `deployments.common.public_reason` categories ("timeout",
    "unavailable", "error (ExceptionName)"), a timeout with its deadline ("timeout after
    0.5 s"), a skipped stage ("skipped: ...") or a stage answer that could not be used
    ("wrong number of scores; ..."). The exception name is dropped: it is unbounded.
    """
    text = reason.strip().lower()
    if text in FALLBACK_REASONS:
        return text
    for prefix, label in (
        ("timeout", "timeout"),
        ("unavailable", "unavailable"),
        ("error", "error"),
        ("skipped", "skipped"),
        ("wrong", "bad_output"),
        ("invalid", "bad_output"),
    ):
        if text.startswith(prefix):
            return label
    return OTHER


def source_label(source: str) -> str:
    """The `source` label of a candidate source (unknown: "other")."""
    return source if source in SOURCES else OTHER


def genre_vocabulary(genres: Iterable[str], limit: int = MAX_GENRES) -> frozenset[str]:
    """The genre label values of a catalog: its genres in name order, at most `limit`."""
    return frozenset(sorted(set(genres))[:limit])


def event_type_label(kind: object) -> str:
    """The `type` label of an event type as posted (anything not a type: "other")."""
    return kind if isinstance(kind, str) and kind in EVENT_TYPES else OTHER


class VersionLabels:
    """The `model_version` label: the first `limit` versions a process sees keep their name,
    later ones become "other" (a rollout changes the version a few times, never per request)."""

    def __init__(self, limit: int = MAX_VERSIONS) -> None:
        self._limit = limit
        self._known: set[str] = set()

    def __call__(self, version: str) -> str:
        if version in self._known:
            return version
        if len(self._known) < self._limit and version:
            self._known.add(version)
            return version
        return OTHER
