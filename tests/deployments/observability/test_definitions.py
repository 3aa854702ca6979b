"""Metric names and labels follow the Prometheus conventions, checked against a fixed list."""

from __future__ import annotations

import re

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from deployments.observability.backends import PrometheusClientBackend
from deployments.observability.definitions import (
    ALL_METRICS,
    LABEL_VALUES,
    RESERVED_LABELS,
    Kind,
    MetricSpec,
)

EXPECTED: dict[str, Kind] = {
    "movierec_stage_latency_seconds": Kind.HISTOGRAM,
    "movierec_source_candidates": Kind.HISTOGRAM,
    "movierec_source_overlap_ratio": Kind.HISTOGRAM,
    "movierec_fallbacks_total": Kind.COUNTER,
    "movierec_degraded_requests_total": Kind.COUNTER,
    "movierec_cold_starts_total": Kind.COUNTER,
    "movierec_ranking_batch_size": Kind.HISTOGRAM,
    "movierec_ranking_score": Kind.HISTOGRAM,
    "movierec_served_items_total": Kind.COUNTER,
    "movierec_served_genre_items_total": Kind.COUNTER,
    "movierec_served_popularity_ratio": Kind.HISTOGRAM,
    "movierec_catalog_coverage_ratio": Kind.GAUGE,
    "movierec_events_total": Kind.COUNTER,
    "movierec_event_lag_seconds": Kind.HISTOGRAM,
    "movierec_feedback_total": Kind.COUNTER,
    "movierec_impression_logs_total": Kind.COUNTER,
}
"""What the app exports, as stored in Prometheus (Ray's `ray_` prefix relabeled away)."""

NAME = re.compile(r"^movierec_[a-z][a-z0-9]*(_[a-z0-9]+)*$")
NON_BASE_UNITS = ("_ms", "_milliseconds", "_minutes", "_hours", "_percent", "_bytes_kb")
SUFFIXES_OF_SAMPLES = ("_bucket", "_sum", "_count", "_created", "_total_total")
ID_LABELS = re.compile(r"(^|_)(user|movie|item|request|session)(_?id)?$|(^|_)id$")


def test_the_metric_list_is_exactly_the_expected_one() -> None:
    assert {spec.name: spec.kind for spec in ALL_METRICS} == EXPECTED
    assert len({spec.name for spec in ALL_METRICS}) == len(ALL_METRICS)


def test_names_follow_the_conventions() -> None:
    for spec in ALL_METRICS:
        assert NAME.match(spec.name), spec.name
        assert spec.name.endswith("_total") == (spec.kind is Kind.COUNTER), spec.name
        assert not spec.name.endswith(NON_BASE_UNITS), f"{spec.name}: use base units"
        assert not spec.name.endswith(SUFFIXES_OF_SAMPLES), f"{spec.name}: a sample suffix"
        if "latency" in spec.name or "duration" in spec.name:
            assert spec.name.endswith("_seconds"), f"{spec.name}: durations are in seconds"
        assert spec.description and spec.description.endswith("."), spec.name


def test_labels_are_bounded_and_never_ids() -> None:
    for spec in ALL_METRICS:
        for label in spec.labels:
            assert label not in RESERVED_LABELS, f"{spec.name}: {label} is set by Ray/Prometheus"
            assert not ID_LABELS.search(label), f"{spec.name}: {label} looks like an id"
            assert label in LABEL_VALUES, f"{spec.name}: {label} has no declared vocabulary"
    for label, values in LABEL_VALUES.items():
        if values is not None:
            assert len(values) <= 20, label
            assert all(re.fullmatch(r"[a-z_]+", v) for v in values), (label, values)


def _check_buckets(spec: MetricSpec) -> None:
    buckets = list(spec.buckets)
    assert buckets == sorted(set(buckets)), spec.name
    assert buckets[0] > 0, f"{spec.name}: Ray refuses bounds <= 0"
    if spec.name.endswith(("_ratio", "_score")):
        assert buckets[-1] <= 1.0, spec.name


def test_histograms_have_valid_buckets_and_others_none() -> None:
    for spec in ALL_METRICS:
        if spec.kind is Kind.HISTOGRAM:
            _check_buckets(spec)
        else:
            assert spec.buckets == (), spec.name


def test_prometheus_client_exports_exactly_the_declared_names() -> None:
    backend = PrometheusClientBackend()
    for spec in ALL_METRICS:
        tags = {label: "x" for label in spec.labels}
        if spec.kind is Kind.COUNTER:
            backend.counter(spec).inc(1, tags)
        elif spec.kind is Kind.GAUGE:
            backend.gauge(spec).set(0.5, tags)
        else:
            backend.histogram(spec).observe(0.5, tags)
    text = generate_latest(backend.registry).decode()
    samples = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    assert samples == {name for spec in ALL_METRICS for name in spec.series_names}
