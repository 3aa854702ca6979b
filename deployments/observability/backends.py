"""Where the metrics of `definitions` go: Ray Serve's metrics API, or prometheus_client.

Serve replicas are separate processes (often several per deployment): a prometheus_client
registry in each would need one scrape target per replica. Ray Serve's metrics API
(`RayServeBackend`) instead sends every replica's samples to the node's metrics agent, which
exports them on one port with the `application`, `deployment` and `replica` labels added.
A single process (the monolith baseline) uses `PrometheusClientBackend` and serves its
registry on `/metrics`. Both take the same `MetricSpec`s, so both export the same names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, disable_created_metrics
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

from deployments.observability.definitions import Kind, MetricSpec

Tags = Mapping[str, str] | None


class Counter(Protocol):
    """A monotonically increasing count."""

    def inc(self, value: float = 1.0, tags: Tags = None) -> None:
        """Adds `value` (>= 0; 0 is a no-op) to the series of `tags`."""


class Gauge(Protocol):
    """A value that goes up and down."""

    def set(self, value: float, tags: Tags = None) -> None:
        """Sets the series of `tags` to `value`."""


class Histogram(Protocol):
    """A distribution over fixed buckets."""

    def observe(self, value: float, tags: Tags = None) -> None:
        """Records one observation in the series of `tags`."""


class MetricsBackend(Protocol):
    """Creates the instrument of a `MetricSpec`."""

    def counter(self, spec: MetricSpec) -> Counter:
        """A counter for `spec` (kind COUNTER)."""

    def gauge(self, spec: MetricSpec) -> Gauge:
        """A gauge for `spec` (kind GAUGE)."""

    def histogram(self, spec: MetricSpec) -> Histogram:
        """A histogram for `spec` (kind HISTOGRAM)."""


def _check(spec: MetricSpec, kind: Kind) -> None:
    if spec.kind is not kind:
        raise TypeError(f"{spec.name} is a {spec.kind}, not a {kind}")


def _tag_keys(spec: MetricSpec) -> Any:
    """The labels as Ray takes them (its annotation says `tuple[str]`, it means any length)."""
    return spec.labels


class _RayMetric:
    """A `ray.serve.metrics` instrument behind the backend-neutral signatures."""

    def __init__(self, metric: Any) -> None:
        self._metric = metric

    def inc(self, value: float = 1.0, tags: Tags = None) -> None:
        if value > 0:  # Ray refuses inc(0)
            self._metric.inc(value, tags=dict(tags) if tags else None)

    def set(self, value: float, tags: Tags = None) -> None:
        self._metric.set(value, tags=dict(tags) if tags else None)

    def observe(self, value: float, tags: Tags = None) -> None:
        self._metric.observe(value, tags=dict(tags) if tags else None)


class RayServeBackend:
    """Instruments of `ray.serve.metrics`: use inside Serve replicas (and only there).

    Ray adds the `ray_` prefix and the replica's `application`, `deployment` and `replica`
    labels; samples reach Prometheus through the node's metrics agent, every
    `metrics_report_interval_ms` (Ray's default: 10 s).
    """

    def counter(self, spec: MetricSpec) -> Counter:
        """A `ray.serve.metrics.Counter` (exported as `ray_<name>`, `_total` kept once)."""
        from ray.serve import metrics

        _check(spec, Kind.COUNTER)
        return _RayMetric(
            metrics.Counter(spec.name, description=spec.description, tag_keys=_tag_keys(spec))
        )

    def gauge(self, spec: MetricSpec) -> Gauge:
        """A `ray.serve.metrics.Gauge`."""
        from ray.serve import metrics

        _check(spec, Kind.GAUGE)
        return _RayMetric(
            metrics.Gauge(spec.name, description=spec.description, tag_keys=_tag_keys(spec))
        )

    def histogram(self, spec: MetricSpec) -> Histogram:
        """A `ray.serve.metrics.Histogram` with the spec's buckets."""
        from ray.serve import metrics

        _check(spec, Kind.HISTOGRAM)
        return _RayMetric(
            metrics.Histogram(
                spec.name,
                description=spec.description,
                boundaries=list(spec.buckets),
                tag_keys=_tag_keys(spec),
            )
        )


class _PromMetric:
    """A prometheus_client instrument behind the backend-neutral signatures."""

    def __init__(self, metric: Any, labelled: bool) -> None:
        self._metric = metric
        self._labelled = labelled

    def _series(self, tags: Tags) -> Any:
        return self._metric.labels(**tags) if self._labelled and tags else self._metric

    def inc(self, value: float = 1.0, tags: Tags = None) -> None:
        if value > 0:
            self._series(tags).inc(value)

    def set(self, value: float, tags: Tags = None) -> None:
        self._series(tags).set(value)

    def observe(self, value: float, tags: Tags = None) -> None:
        self._series(tags).observe(value)


class PrometheusClientBackend:
    """Instruments in a prometheus_client registry: for a single process serving `/metrics`.

    Creating one turns off prometheus_client's `_created` series process-wide, so this
    backend exports exactly the names Ray exports.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Args:
        registry: Where the instruments register (default: a new, private registry; pass
            `prometheus_client.REGISTRY` to share the process default).
        """
        disable_created_metrics()
        self.registry = registry if registry is not None else CollectorRegistry()

    def counter(self, spec: MetricSpec) -> Counter:
        """A `prometheus_client.Counter` (prometheus_client keeps `_total` once)."""
        _check(spec, Kind.COUNTER)
        metric = PromCounter(spec.name, spec.description, spec.labels, registry=self.registry)
        return _PromMetric(metric, bool(spec.labels))

    def gauge(self, spec: MetricSpec) -> Gauge:
        """A `prometheus_client.Gauge`."""
        _check(spec, Kind.GAUGE)
        metric = PromGauge(spec.name, spec.description, spec.labels, registry=self.registry)
        return _PromMetric(metric, bool(spec.labels))

    def histogram(self, spec: MetricSpec) -> Histogram:
        """A `prometheus_client.Histogram` with the spec's buckets."""
        _check(spec, Kind.HISTOGRAM)
        metric = PromHistogram(
            spec.name,
            spec.description,
            spec.labels,
            buckets=spec.buckets,
            registry=self.registry,
        )
        return _PromMetric(metric, bool(spec.labels))
