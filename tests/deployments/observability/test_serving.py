"""ServingMetrics on the prometheus_client backend: what a request records, value by value."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from deployments.catalog import Catalog, Movie
from deployments.observability.backends import PrometheusClientBackend
from deployments.observability.definitions import SCORE_SAMPLES
from deployments.observability.serving import ServingMetrics, popularity_percentiles, score_sample
from deployments.schemas import RecommendationResponse, RecommendedMovie
from deployments.service import RequestTrace

MOVIES = [
    Movie(1, "A", ("Drama",), 1995),
    Movie(2, "B", ("Drama", "Romance"), 1990),
    Movie(3, "C", ("Comedy",), 1980),
    Movie(4, "D", ("War", "Drama"), 1999),
    Movie(5, "E", (), 1970),
]
POPULAR = [3, 1, 2, 4]  # movie 5 was never rated


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Setup = tuple[ServingMetrics, CollectorRegistry, Clock]


@pytest.fixture
def setup() -> Setup:
    backend = PrometheusClientBackend()
    clock = Clock()
    metrics = ServingMetrics(backend, Catalog(MOVIES, POPULAR), coverage_window_s=60, clock=clock)
    return metrics, backend.registry, clock


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    assert value is not None, (name, labels)
    return value


def test_popularity_percentiles() -> None:
    percentiles = popularity_percentiles(Catalog(MOVIES, POPULAR))
    assert percentiles == {3: 1.0, 1: 0.75, 2: 0.5, 4: 0.25}


def test_stage_latencies_and_fallbacks_get_bounded_labels(setup: Setup) -> None:
    metrics, registry, _ = setup
    metrics.stage("content", 0.004)
    metrics.stage("total", 0.030)
    metrics.stage("a stage nobody declared", 0.001)
    metrics.fallback("ranking", "timeout after 1 s")
    metrics.fallback("content", "skipped: no seeds without the user's features")
    metrics.fallback("retrieval", "error (ConnectionError)")
    name = "movierec_stage_latency_seconds"
    assert _value(registry, f"{name}_count", stage="content") == 1
    assert _value(registry, f"{name}_sum", stage="total") == pytest.approx(0.030)
    assert _value(registry, f"{name}_bucket", stage="total", le="0.03") == 1
    assert _value(registry, f"{name}_bucket", stage="total", le="0.02") == 0
    assert _value(registry, f"{name}_count", stage="other") == 1
    fallbacks = "movierec_fallbacks_total"
    assert _value(registry, fallbacks, stage="ranking", reason="timeout") == 1
    assert _value(registry, fallbacks, stage="content", reason="skipped") == 1
    assert _value(registry, fallbacks, stage="retrieval", reason="error") == 1


def test_candidate_counts_and_source_overlap(setup: Setup) -> None:
    metrics, registry, _ = setup
    metrics.candidates({"retrieval": 6, "content": 4, "popular": 0}, merged=8, overlap=2)
    name = "movierec_source_candidates"
    assert _value(registry, f"{name}_sum", source="retrieval") == 6
    assert _value(registry, f"{name}_sum", source="content") == 4
    assert _value(registry, f"{name}_bucket", source="popular", le="0.5") == 1  # a zero
    overlap = "movierec_source_overlap_ratio"
    assert _value(registry, f"{overlap}_sum") == pytest.approx(2 / 8)
    metrics.candidates({"retrieval": 0, "popular": 100}, merged=100, overlap=0)
    assert _value(registry, f"{overlap}_count") == 1  # one source: no overlap to speak of
    metrics.candidates({}, merged=0, overlap=0)  # a cold start
    assert _value(registry, f"{name}_count", source="popular") == 2


def test_request_outcomes(setup: Setup) -> None:
    metrics, registry, _ = setup
    metrics.request(cold_start=True, degraded=False)
    metrics.request(cold_start=False, degraded=True)
    metrics.request(cold_start=False, degraded=False)
    assert _value(registry, "movierec_cold_starts_total") == 1
    assert _value(registry, "movierec_degraded_requests_total") == 1


def test_served_items_genres_popularity_scores_and_coverage(setup: Setup) -> None:
    metrics, registry, clock = setup
    metrics.served([3, 4, 5], ranker_scores=[0.9, 0.42, 0.1])
    assert _value(registry, "movierec_served_items_total") == 3
    genres = "movierec_served_genre_items_total"
    assert _value(registry, genres, genre="Comedy") == 1
    assert _value(registry, genres, genre="Drama") == 1
    assert _value(registry, genres, genre="War") == 1
    assert registry.get_sample_value(genres, {"genre": "Romance"}) is None
    popularity = "movierec_served_popularity_ratio"
    assert _value(registry, f"{popularity}_sum") == pytest.approx((1.0 + 0.25 + 0.0) / 3)
    assert _value(registry, f"{popularity}_count") == 1
    assert _value(registry, "movierec_ranking_score_count") == 3
    assert _value(registry, "movierec_ranking_score_bucket", le="0.45") == 2
    assert _value(registry, "movierec_catalog_coverage_ratio") == pytest.approx(3 / 5)

    clock.now = 30.0
    metrics.served([1, 3])  # no ranker scores: cold start or the ranking fallback
    assert _value(registry, "movierec_ranking_score_count") == 3
    assert _value(registry, "movierec_catalog_coverage_ratio") == pytest.approx(4 / 5)
    clock.now = 75.0  # 3, 4, 5 of t=0 expired; 1 and 3 of t=30 remain
    metrics.served([2])
    assert _value(registry, "movierec_catalog_coverage_ratio") == pytest.approx(3 / 5)


def test_an_empty_answer_records_no_items(setup: Setup) -> None:
    metrics, registry, _ = setup
    metrics.served([])
    assert registry.get_sample_value("movierec_served_items_total") == 0
    assert registry.get_sample_value("movierec_served_popularity_ratio_count") == 0


def test_score_sample_keeps_the_order_statistics() -> None:
    assert score_sample([0.3, 0.1]) == [0.3, 0.1]
    scores = [i / 100 for i in range(100)]
    sample = score_sample(scores, n=10)
    assert sample == [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    assert len(score_sample(scores[::-1])) == SCORE_SAMPLES


def test_observe_records_a_whole_request_from_its_trace(setup: Setup) -> None:
    metrics, registry, _ = setup
    trace = RequestTrace()
    trace.timings.update({"retrieval": 3.0, "content": 2.0, "ranking": 5.0, "rules": 0.1})
    trace.fail("content", "timeout")
    trace.candidates, trace.merged, trace.overlap = {"retrieval": 5, "popular": 3}, 7, 1
    trace.ranked_scores = [0.2, 0.7]
    items = [
        RecommendedMovie(movie_id=m, title="t", genres=[], year=None, score=0.5, sources=[])
        for m in (1, 3)
    ]
    response = RecommendationResponse(
        user_id=7, items=items, model_version="v", degraded=True, fallbacks=trace.fallbacks
    )
    metrics.observe(trace, response)
    latency = "movierec_stage_latency_seconds"
    assert _value(registry, f"{latency}_sum", stage="retrieval") == pytest.approx(0.003)
    assert _value(registry, f"{latency}_sum", stage="content") == pytest.approx(0.002)
    assert _value(registry, f"{latency}_sum", stage="rules") == pytest.approx(0.0001)
    assert _value(registry, f"{latency}_count", stage="total") == 1
    assert _value(registry, "movierec_fallbacks_total", stage="content", reason="timeout") == 1
    assert _value(registry, "movierec_degraded_requests_total") == 1
    assert _value(registry, "movierec_cold_starts_total") == 0
    assert _value(registry, "movierec_source_overlap_ratio_sum") == pytest.approx(1 / 7)
    assert _value(registry, "movierec_ranking_score_count") == 2
    assert _value(registry, "movierec_served_items_total") == 2
    assert _value(registry, "movierec_served_popularity_ratio_sum") == pytest.approx(0.875)
    assert _value(registry, "movierec_catalog_coverage_ratio") == pytest.approx(2 / 5)


def test_the_coverage_window_can_change_at_runtime(setup: Setup) -> None:
    metrics, registry, clock = setup
    metrics.served([1, 2])
    clock.now = 20.0
    metrics.set_coverage_window(10.0)
    metrics.served([3])
    assert _value(registry, "movierec_catalog_coverage_ratio") == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="> 0"):
        metrics.set_coverage_window(0)
