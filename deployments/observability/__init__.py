"""Observability of the serving path: metric definitions, their backends, the request observer.

* `definitions`: every metric the app exports (name, type, labels, buckets), in one place.
* `labels`: the bounded label vocabularies and the functions mapping raw values onto them.
* `backends`: where metrics go: Ray Serve's metrics API inside replicas, prometheus_client in
  a single process (the monolith baseline); both build the same `ServingMetrics`.
* `serving`: `ServingMetrics`, the `RequestObserver` recording each request on a backend.
* `window`: the sliding window of distinct served movies behind the coverage gauge.
"""
