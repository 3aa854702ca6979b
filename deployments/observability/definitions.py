"""Every metric movierec exports: name, type, description, labels and buckets. One place.

Conventions (Prometheus): base units (seconds, ratios 0..1), `_total` on counters, `_seconds`
on durations, `_ratio` on fractions; no user or movie ids as label values, and every label
drawn from a bounded vocabulary (`deployments.observability.labels`).

The names here are the names stored in Prometheus. Ray's metrics agent exports a metric of a
Serve replica with a `ray_` prefix (`ray_movierec_fallbacks_total`) and adds the labels
`application`, `deployment` and `replica` (plus Ray's `WorkerId`, `NodeAddress`,
`SessionName`...); `monitoring/prometheus.yml` strips the prefix at scrape time, so the Serve
app and the single-process baseline (prometheus_client, no prefix) store the same names and
the dashboards work on both. A counter keeps its `_total` through both exporters (both follow
the OpenMetrics rule: the suffix is added once, never twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from deployments.observability.labels import EVENT_TYPE_LABELS, OTHER, OUTCOMES, REASONS, STAGES
from movierec.stages import SOURCES

RESERVED_LABELS = frozenset({"application", "deployment", "replica", "route", "le"})
"""Labels Ray Serve (or Prometheus, for `le`) sets itself: no metric may declare them."""


class Kind(StrEnum):
    """Prometheus metric types."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    """One metric.

    Attributes:
        name: The name as stored in Prometheus (counters end with `_total`).
        kind: Counter, gauge or histogram.
        description: The HELP text.
        labels: Label names; each has a bounded vocabulary (`LABEL_VALUES`).
        buckets: Histogram upper bounds, increasing and positive (Ray refuses <= 0); the
            `+Inf` bucket is implicit.
    """

    name: str
    kind: Kind
    description: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def series_names(self) -> tuple[str, ...]:
        """The sample names Prometheus stores for this metric."""
        if self.kind is Kind.HISTOGRAM:
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
COUNT_BUCKETS: tuple[float, ...] = (0.5, 1, 5, 10, 25, 50, 100, 200, 300, 500, 1000, 2000)
"""Item counts; the 0.5 bucket holds exactly the zeros (counts are integers)."""
RATIO_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))
"""0.05, 0.10, ..., 1.0: fractions and probabilities."""
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
LAG_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)  # fmt: skip
"""Event-to-online lag: milliseconds when the applier keeps up, minutes after an outage."""
SCORE_SAMPLES = 10
"""At most this many ranker scores are observed per request (each observation through Ray
costs a few microseconds; 10 evenly spaced order statistics keep the distribution's shape)."""

STAGE_LATENCY = MetricSpec(
    "movierec_stage_latency_seconds",
    Kind.HISTOGRAM,
    "Latency of each stage of a request (stage calls, in-process steps) and of the whole "
    "request (stage=total), in seconds.",
    ("stage",),
    LATENCY_BUCKETS_S,
)
SOURCE_CANDIDATES = MetricSpec(
    "movierec_source_candidates",
    Kind.HISTOGRAM,
    "Candidates one source proposed for one request (before merging).",
    ("source",),
    COUNT_BUCKETS,
)
SOURCE_OVERLAP = MetricSpec(
    "movierec_source_overlap_ratio",
    Kind.HISTOGRAM,
    "Share of one request's merged candidates that more than one source proposed (observed "
    "when at least two sources proposed something).",
    (),
    RATIO_BUCKETS,
)
FALLBACKS = MetricSpec(
    "movierec_fallbacks_total",
    Kind.COUNTER,
    "Stages a request went on without (failed, late or skipped), by stage and reason.",
    ("stage", "reason"),
)
DEGRADED = MetricSpec(
    "movierec_degraded_requests_total",
    Kind.COUNTER,
    "Recommendation requests answered degraded (at least one fallback).",
)
COLD_STARTS = MetricSpec(
    "movierec_cold_starts_total",
    Kind.COUNTER,
    "Recommendation requests for an unknown user (answered with the cold-start list).",
)
RANKING_BATCH_SIZE = MetricSpec(
    "movierec_ranking_batch_size",
    Kind.HISTOGRAM,
    "Requests scored together by one ranker call (Ranking deployment).",
    (),
    BATCH_BUCKETS,
)
RANKING_SCORE = MetricSpec(
    "movierec_ranking_score",
    Kind.HISTOGRAM,
    "Ranker scores (relevance probabilities) of each request's ranked candidates: all of them, "
    f"or {SCORE_SAMPLES} evenly spaced order statistics when there are more.",
    (),
    RATIO_BUCKETS,
)
SERVED_ITEMS = MetricSpec(
    "movierec_served_items_total",
    Kind.COUNTER,
    "Movies served in recommendation lists.",
)
SERVED_GENRE_ITEMS = MetricSpec(
    "movierec_served_genre_items_total",
    Kind.COUNTER,
    "Served movies having each genre (a movie with two genres counts for both).",
    ("genre",),
)
POPULARITY = MetricSpec(
    "movierec_served_popularity_ratio",
    Kind.HISTOGRAM,
    "Mean popularity percentile of one response's movies (1: the most rated movie of the "
    "catalog; 0: never rated).",
    (),
    RATIO_BUCKETS,
)
COVERAGE = MetricSpec(
    "movierec_catalog_coverage_ratio",
    Kind.GAUGE,
    "Distinct movies this replica served over its sliding window, divided by the catalog "
    "size (per replica: take the max over replicas, a lower bound of the global coverage).",
)

EVENTS = MetricSpec(
    "movierec_events_total",
    Kind.COUNTER,
    "Feedback events posted to POST /events, by type and outcome (accepted, duplicate, "
    "rejected with 422, unavailable 503, rate_limited 429).",
    ("type", "outcome"),
)
EVENT_LAG = MetricSpec(
    "movierec_event_lag_seconds",
    Kind.HISTOGRAM,
    "Feature freshness: seconds from an event's receipt by the API (before its 202) to its "
    "user's features written online by the applier (Events deployment).",
    ("type",),
    LAG_BUCKETS_S,
)
FEEDBACK = MetricSpec(
    "movierec_feedback_total",
    Kind.COUNTER,
    "Impressions and clicks logged (not duplicates), by the model_version that served the "
    "list (server-side impression logs) or that the receiving Controller serves (posted "
    "events): the click-through rate is clicks over impressions.",
    ("type", "model_version"),
)
IMPRESSION_LOGS = MetricSpec(
    "movierec_impression_logs_total",
    Kind.COUNTER,
    "Served lists the Controller logged as impressions (user_config.impressions.log_served), "
    "by outcome: accepted, dropped (queue full), unavailable or rate_limited (not logged).",
    ("outcome",),
)

SERVING_METRICS: tuple[MetricSpec, ...] = (
    STAGE_LATENCY,
    SOURCE_CANDIDATES,
    SOURCE_OVERLAP,
    FALLBACKS,
    DEGRADED,
    COLD_STARTS,
    RANKING_SCORE,
    SERVED_ITEMS,
    SERVED_GENRE_ITEMS,
    POPULARITY,
    COVERAGE,
)
"""What the request path records (the Controller, or the monolith's single process)."""

RANKING_METRICS: tuple[MetricSpec, ...] = (RANKING_BATCH_SIZE,)
"""What the Ranking deployment records."""

EVENT_API_METRICS: tuple[MetricSpec, ...] = (EVENTS, FEEDBACK, IMPRESSION_LOGS)
"""What the Controller records about feedback (POST /events, the impression logs)."""

APPLIER_METRICS: tuple[MetricSpec, ...] = (EVENT_LAG,)
"""What the Events deployment records."""

ALL_METRICS: tuple[MetricSpec, ...] = (
    SERVING_METRICS + RANKING_METRICS + EVENT_API_METRICS + APPLIER_METRICS
)

LABEL_VALUES: dict[str, tuple[str, ...] | None] = {
    "stage": STAGES,
    "reason": REASONS,
    "source": (*SOURCES, OTHER),
    "genre": None,  # the catalog's genres, at most labels.MAX_GENRES, plus "other"
    "type": EVENT_TYPE_LABELS,
    "outcome": OUTCOMES,
    "model_version": None,  # the served versions, at most labels.MAX_VERSIONS, plus "other"
}
"""Every label name in use and its closed vocabulary (None: bounded, from the catalog)."""
