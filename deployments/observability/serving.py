"""The request path's metrics: service health (stages, candidates, fallbacks) and model health
(scores, coverage, popularity bias, genre mix).

`ServingMetrics` owns the instruments of `definitions.SERVING_METRICS` on one backend and the
bookkeeping the model-health metrics need (popularity percentiles, genre labels, the coverage
window). It is the `RequestObserver` of `RecommendService`: the Serve Controller builds one on
`RayServeBackend`, a single process (the monolith baseline) on `PrometheusClientBackend`::

    backend = PrometheusClientBackend(prometheus_client.REGISTRY)
    service = RecommendService(stages, catalog, version, observer=ServingMetrics(backend, catalog))

Catalog coverage is a per-replica sliding window: each replica counts the distinct movies it
served over the last `coverage_window_s` and exports that over the catalog size. Distinct
counts do not add up across replicas, and a per-movie label would create one series per
movie, so the global number is not exported: behind Serve's router each of N replicas sees
about 1/N of the traffic, and the max over replicas is a lower bound of the global coverage
(exact with one replica, and in the single-process baseline). The offline evaluation gives
the exact coverage of a user population.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence

from deployments.catalog import Catalog
from deployments.observability import definitions as d
from deployments.observability.backends import MetricsBackend
from deployments.observability.labels import (
    OTHER,
    genre_vocabulary,
    reason_label,
    source_label,
    stage_label,
)
from deployments.observability.window import SlidingDistinct
from deployments.schemas import RecommendationResponse
from deployments.service import RequestTrace

DEFAULT_COVERAGE_WINDOW_S = 3600.0


def popularity_percentiles(catalog: Catalog) -> dict[int, float]:
    """Movie id -> popularity percentile in (0, 1]: 1 for the most rated movie, 1/P for the
    least rated of the P movies of the popularity list. Movies not in it are absent (0)."""
    total = len(catalog.popular_ids)
    return {movie_id: 1.0 - rank / total for rank, movie_id in enumerate(catalog.popular_ids)}


def score_sample(scores: Sequence[float], n: int = d.SCORE_SAMPLES) -> list[float]:
    """All `scores` if there are at most `n`, else `n` evenly spaced order statistics (the
    midpoints of n equal strata of the sorted scores), so the histogram keeps their shape."""
    if len(scores) <= n:
        return list(scores)
    ordered = sorted(scores)
    step = len(ordered) / n
    return [ordered[int((i + 0.5) * step)] for i in range(n)]


class ServingMetrics:
    """Records what one request did and served, on any `MetricsBackend`."""

    def __init__(
        self,
        backend: MetricsBackend,
        catalog: Catalog,
        coverage_window_s: float = DEFAULT_COVERAGE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Creates the instruments.

        Args:
            backend: Ray Serve's metrics (in a replica) or prometheus_client.
            catalog: The served catalog: genres, popularity order and size.
            coverage_window_s: Window of the catalog coverage gauge, in seconds.
            clock: Monotonic seconds (tests pass their own).
        """
        self.stage_latency = backend.histogram(d.STAGE_LATENCY)
        self.source_candidates = backend.histogram(d.SOURCE_CANDIDATES)
        self.source_overlap = backend.histogram(d.SOURCE_OVERLAP)
        self.fallbacks = backend.counter(d.FALLBACKS)
        self.degraded = backend.counter(d.DEGRADED)
        self.cold_starts = backend.counter(d.COLD_STARTS)
        self.ranking_score = backend.histogram(d.RANKING_SCORE)
        self.served_items = backend.counter(d.SERVED_ITEMS)
        self.served_genre_items = backend.counter(d.SERVED_GENRE_ITEMS)
        self.popularity = backend.histogram(d.POPULARITY)
        self.coverage = backend.gauge(d.COVERAGE)
        self._catalog = catalog
        self._percentile = popularity_percentiles(catalog)
        self._genres = genre_vocabulary(catalog.genres)
        self._window = SlidingDistinct(coverage_window_s)
        self._clock = clock

    def set_coverage_window(self, seconds: float) -> None:
        """Changes the coverage window (applies from the next request on).

        Raises:
            ValueError: `seconds` is not > 0.
        """
        if seconds <= 0:
            raise ValueError(f"coverage window must be > 0 s, got {seconds}")
        self._window.window_s = seconds

    def observe(self, trace: RequestTrace, response: RecommendationResponse) -> None:
        """Records one answered recommendation request (`RequestObserver`)."""
        for stage, elapsed_ms in trace.timings.items():
            self.stage(stage, elapsed_ms / 1000.0)
        self.stage("total", trace.elapsed_ms() / 1000.0)
        for fallback in trace.fallbacks:
            self.fallback(fallback.stage, fallback.reason)
        self.candidates(trace.candidates, trace.merged, trace.overlap)
        self.request(cold_start=response.cold_start, degraded=response.degraded)
        self.served([item.movie_id for item in response.items], trace.ranked_scores)

    def stage(self, stage: str, seconds: float) -> None:
        """One stage's latency (`stage` as the request flow names it; "total" for the
        whole request)."""
        self.stage_latency.observe(max(seconds, 0.0), {"stage": stage_label(stage)})

    def fallback(self, stage: str, reason: str) -> None:
        """A stage the request went on without, and the API's reason for it."""
        self.fallbacks.inc(1, {"stage": stage_label(stage), "reason": reason_label(reason)})

    def candidates(self, counts: Mapping[str, int], merged: int, overlap: int) -> None:
        """Candidates per source, and the share of the merged ones more than one proposed.

        Args:
            counts: Source -> candidates it proposed (a cold start has none).
            merged: Distinct candidates after merging.
            overlap: Merged candidates proposed by more than one source.
        """
        for source, count in counts.items():
            self.source_candidates.observe(count, {"source": source_label(source)})
        if merged > 0 and sum(1 for count in counts.values() if count > 0) >= 2:
            self.source_overlap.observe(overlap / merged)

    def request(self, *, cold_start: bool, degraded: bool) -> None:
        """The request's outcome (counted once per recommendation request)."""
        if cold_start:
            self.cold_starts.inc()
        if degraded:
            self.degraded.inc()

    def served(self, movie_ids: Sequence[int], ranker_scores: Sequence[float] = ()) -> None:
        """The movies of one answer, and the ranker's scores of the request's candidates
        (empty when ranking did not run: cold start, or the ranking fallback)."""
        for score in score_sample(ranker_scores):
            self.ranking_score.observe(float(score))
        if not movie_ids:
            return
        self.served_items.inc(len(movie_ids))
        genres: Tally[str] = Tally()
        for movie_id in movie_ids:
            movie = self._catalog.movies.get(movie_id)
            if movie is not None:
                genres.update(g if g in self._genres else OTHER for g in set(movie.genres))
        for genre, count in genres.items():
            self.served_genre_items.inc(count, {"genre": genre})
        mean = sum(self._percentile.get(m, 0.0) for m in movie_ids) / len(movie_ids)
        self.popularity.observe(mean)
        now = self._clock()
        self._window.add(movie_ids, now)
        if len(self._catalog):
            self.coverage.set(self._window.count(now) / len(self._catalog))
