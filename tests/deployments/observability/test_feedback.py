"""Feedback metrics on prometheus_client: events by type and outcome, the click-through rate's
counters by model version, the impression logs and the event-to-online lag."""

from __future__ import annotations

from deployments.event_api import posted_types
from deployments.observability.backends import PrometheusClientBackend
from deployments.observability.feedback import FeedbackMetrics, LagMetrics
from deployments.observability.labels import MAX_VERSIONS, VersionLabels, event_type_label
from movierec.events import Event, IngestResult


def _value(backend: PrometheusClientBackend, name: str, **labels: str) -> float | None:
    return backend.registry.get_sample_value(name, labels)


def test_posted_events_count_by_type_and_outcome_and_feed_the_ctr() -> None:
    backend = PrometheusClientBackend()
    metrics = FeedbackMetrics(backend)
    types = ["click", "impression", "impression", "rating", "click"]
    metrics.posted(types, IngestResult(3, 2, (1, 4)), "v1")  # the 2nd and 5th were repeats
    events = "movierec_events_total"
    assert _value(backend, events, type="click", outcome="accepted") == 1
    assert _value(backend, events, type="click", outcome="duplicate") == 1
    assert _value(backend, events, type="impression", outcome="accepted") == 1
    assert _value(backend, events, type="impression", outcome="duplicate") == 1
    assert _value(backend, events, type="rating", outcome="accepted") == 1
    feedback = "movierec_feedback_total"
    assert _value(backend, feedback, type="click", model_version="v1") == 1
    assert _value(backend, feedback, type="impression", model_version="v1") == 1
    assert _value(backend, feedback, type="rating", model_version="v1") is None  # not CTR

    metrics.failed(["watch", "bogus", None], "rejected")
    metrics.failed(["dismiss"], "unavailable")
    assert _value(backend, events, type="watch", outcome="rejected") == 1
    assert _value(backend, events, type="other", outcome="rejected") == 2
    assert _value(backend, events, type="dismiss", outcome="unavailable") == 1


def test_impression_logs_count_lists_and_accepted_impressions_by_version() -> None:
    backend = PrometheusClientBackend()
    metrics = FeedbackMetrics(backend)
    metrics.logged(1, 10, "v2", "accepted")
    metrics.logged(1, 10, "v2", "accepted")
    metrics.logged(1, 10, "v2", "dropped")
    logs = "movierec_impression_logs_total"
    assert _value(backend, logs, outcome="accepted") == 2
    assert _value(backend, logs, outcome="dropped") == 1
    assert _value(backend, "movierec_feedback_total", type="impression", model_version="v2") == 20


def test_the_lag_is_observed_by_type() -> None:
    backend = PrometheusClientBackend()
    lag = LagMetrics(backend)
    event = Event(1, 2, "watch", None, 100.0, 100.0)
    lag.observe(event, 0.04)
    lag.observe(event, -1.0)  # clocks of two machines: never a negative observation
    name = "movierec_event_lag_seconds"
    assert _value(backend, f"{name}_count", type="watch") == 2
    assert _value(backend, f"{name}_bucket", type="watch", le="0.005") == 1
    assert _value(backend, f"{name}_bucket", type="watch", le="0.05") == 2


def test_labels_stay_bounded() -> None:
    versions = VersionLabels()
    names = [versions(f"v{i}") for i in range(MAX_VERSIONS + 3)]
    assert names[:MAX_VERSIONS] == [f"v{i}" for i in range(MAX_VERSIONS)]
    assert names[MAX_VERSIONS:] == ["other"] * 3
    assert versions("v0") == "v0" and versions("") == "other"
    assert [event_type_label(t) for t in ("click", "CLICK", 3, None)] == ["click"] + ["other"] * 3


def test_a_rejected_body_gives_the_types_it_holds() -> None:
    assert posted_types({"events": [{"type": "click"}, {"type": 5}, "x"]}) == ["click", 5, None]
    assert posted_types({"events": []}) == [None]
    assert posted_types(b"not json") == [None]
