"""Bounded label vocabularies, and the functions that map raw values onto them.

A Prometheus label value creates a time series; a free-text or per-user value creates one per
distinct value, without bound. Every label of `definitions` is therefore drawn from a closed
vocabulary here: raw stage names, fallback reasons and genres are mapped onto it, and anything
unexpected becomes `OTHER` instead of a new series.
"""

from __future__ import annotations

from collections.abc import Iterable

from deployments.schemas import FALLBACK_REASONS
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
