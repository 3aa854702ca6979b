"""A real Prometheus scrapes the real app on Ray Serve after it served traffic: every PromQL
expression of every dashboard panel returns data, and the exported names are the declared ones.

The Prometheus configuration is the committed `monitoring/prometheus.yml` (relabeling
included), rendered only for this test's Ray instance: its file_sd target file is written
here with the content Ray's dashboard writes (the metrics agent of each alive node; this
in-process Ray runs without a dashboard), and the intervals are 1 s (Ray exports every 1 s).

Traffic comes in two rounds a few scrapes apart, so every series has a sample before its
last increments and `rate()` over the run sees them: personal lists (logged as impressions in
the background), cold starts, HTTP errors, posted impressions and clicks and a rejected
event, then (with tiny stage deadlines) degraded answers.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from deployments.observability.definitions import ALL_METRICS
from deployments.observability.labels import REASONS, STAGES
from monitoring.dashboards import DASHBOARDS_DIR, RATE, expressions
from monitoring.prometheus_server import (
    CONFIG_FILE,
    find_binary,
    load_config,
    query,
    render_config,
    running_prometheus,
)
from tests.deployments._serve import Served, deploy, free_port, serve_tiny_app, with_user_config

pytestmark = pytest.mark.integration

INTERVAL = "1s"
WINDOW = "10m"
"""What `$__rate_interval` becomes: longer than the whole test, so rates cover all traffic."""
USERS = range(1, 21)
UNKNOWN_USERS = (99_991, 99_992)


@dataclass
class Traffic:
    """What the test asked and what the app answered."""

    recommendations: int = 0
    cold_starts: int = 0
    degraded: int = 0
    errors: int = 0
    events: int = 0
    statuses: list[int] = field(default_factory=list)

    def recommend(self, served: Served, user_id: int) -> dict[str, Any]:
        response = served.get(f"/recommendations/{user_id}", k=10)
        assert response.status_code == 200, response.text
        body = response.json()
        self.recommendations += 1
        self.cold_starts += bool(body["cold_start"])
        self.degraded += bool(body["degraded"])
        return body

    def error(self, served: Served, path: str, status: int, **params: Any) -> None:
        response = served.get(path, **params)
        assert response.status_code == status, response.text
        self.errors += 1


@dataclass
class Monitored:
    served: Served
    prometheus: str
    metrics_url: str
    traffic: Traffic


def _write_sd_file(path: Path) -> None:
    """The file_sd target file Ray's dashboard writes: each alive node's metrics agent."""
    import ray

    targets = [
        f"{node['NodeManagerAddress']}:{node['MetricsExportPort']}"
        for node in ray.nodes()
        if node["Alive"]
    ]
    path.write_text(json.dumps([{"labels": {"job": "ray"}, "targets": targets}]))


def _round(served: Served, traffic: Traffic) -> None:
    for user_id in USERS:
        traffic.recommend(served, user_id)
    for user_id in UNKNOWN_USERS:
        assert traffic.recommend(served, user_id)["cold_start"] is True
    traffic.error(served, "/recommendations/0", 422)
    traffic.error(served, "/movies/99999/similar", 404)
    assert served.get("/movies/50/similar", k=5).status_code == 200
    # several posts a round: each Controller replica's series gets increments in both rounds
    for user_id in USERS[:10]:
        feedback = [
            {"user_id": user_id, "movie_id": 50, "type": "impression"},
            {"user_id": user_id, "movie_id": 50, "type": "click"},
        ]
        assert served.http.post("/events", json={"events": feedback}).status_code == 202
        traffic.events += len(feedback)
        bad = {"user_id": user_id, "movie_id": 50, "type": "share"}
        assert served.http.post("/events", json={"events": [bad]}).status_code == 422
        traffic.errors += 1


def _wait_until_scraped(url: str, traffic: Traffic, timeout: float = 60.0) -> None:
    """Until Prometheus holds the count of every recommendation request made."""
    expr = 'sum(movierec_stage_latency_seconds_count{stage="total"})'
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        seen = query(url, expr)
        if seen and float(seen[0]["value"][1]) == traffic.recommendations:
            return
        time.sleep(0.5)
    raise AssertionError(f"Prometheus has {seen}, {traffic.recommendations} requests were made")


def _until_in_prometheus(
    url: str, exprs: tuple[str, ...], act: Callable[[], None], attempts: int = 5
) -> None:
    """Repeats `act` until every one of `exprs` has a series in Prometheus.

    Counters and histograms then have a first sample, so what the next round adds shows in
    `rate()`: a series whose increments all land before its first scrape has a rate of 0.
    """
    missing: list[str] = list(exprs)
    for _ in range(attempts):
        act()
        deadline = time.monotonic() + 5.0  # Ray exports and Prometheus scrapes every second
        while missing and time.monotonic() < deadline:
            missing = [expr for expr in missing if not query(url, expr)]
            time.sleep(0.5)
        if not missing:
            return
    raise AssertionError(f"never scraped after {attempts} rounds: {missing}")


FIRST_ROUND = (
    "movierec_ranking_score_count",
    "movierec_ranking_batch_size_count",
    "movierec_source_overlap_ratio_count",
    "movierec_cold_starts_total",
    "movierec_catalog_coverage_ratio",
    "ray_serve_num_http_error_requests_total",
    'movierec_events_total{outcome="rejected"}',
    'movierec_feedback_total{type="click"}',
    'movierec_feedback_total{type="impression"}',
    "movierec_event_lag_seconds_count",
    "movierec_impression_logs_total",
)
DEGRADED_ROUND = ("movierec_degraded_requests_total", 'movierec_fallbacks_total{reason="timeout"}')


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    started = time.perf_counter()
    metrics_port = free_port()
    with serve_tiny_app(
        tmp_path_factory,
        _metrics_export_port=metrics_port,
        _system_config={"metrics_report_interval_ms": 1000},
    ) as served:
        work = tmp_path_factory.mktemp("prometheus")
        sd_file = work / "prom_metrics_service_discovery.json"
        _write_sd_file(sd_file)
        config = render_config(load_config(), sd_file=sd_file, scrape_interval=INTERVAL)
        deploy(with_user_config(served.config, "Controller", impressions={"log_served": True}))
        with running_prometheus(config, work, free_port()) as url:
            traffic = Traffic()
            _until_in_prometheus(url, FIRST_ROUND, lambda: _round(served, traffic))
            _round(served, traffic)

            tiny = 1e-4  # seconds: no stage call makes it
            deploy(
                with_user_config(
                    served.config, "Controller", timeouts={"ranking": tiny, "retrieval": tiny}
                )
            )
            while not traffic.recommend(served, 3)["degraded"]:
                time.sleep(0.2)

            def degraded_round() -> None:
                for user_id in USERS[:5]:
                    assert traffic.recommend(served, user_id)["degraded"] is True

            _until_in_prometheus(url, DEGRADED_ROUND, degraded_round)
            degraded_round()
            _wait_until_scraped(url, traffic)
            time.sleep(3.0)  # the other metrics of the last requests: exported and scraped
            print(f"\nserved, scraped and ready to query in {time.perf_counter() - started:.1f} s")
            yield Monitored(served, url, f"http://127.0.0.1:{metrics_port}", traffic)


def _dashboard_expressions() -> list[tuple[str, str]]:
    out = []
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for expr in expressions(json.loads(path.read_text())):
            out.append((path.name, expr))
    return out


def test_the_committed_config_is_valid_for_promtool() -> None:
    checked = subprocess.run(
        [str(find_binary("promtool")), "check", "config", str(CONFIG_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_dashboard_expression_returns_data(monitored: Monitored) -> None:
    panels = _dashboard_expressions()
    assert len(panels) >= 25
    empty, nan_only = [], []
    for name, expr in panels:
        result = query(monitored.prometheus, expr.replace(RATE, WINDOW))
        values = [float(sample["value"][1]) for sample in result]
        if not values:
            empty.append(f"{name}: {expr}")
        elif not any(math.isfinite(v) for v in values):
            nan_only.append(f"{name}: {expr} -> {values[:5]}")
    assert not empty, "queries without a series:\n" + "\n".join(empty)
    assert not nan_only, "queries with only NaN/Inf:\n" + "\n".join(nan_only)


def test_prometheus_stores_exactly_the_declared_names(monitored: Monitored) -> None:
    response = httpx.get(f"{monitored.prometheus}/api/v1/label/__name__/values", timeout=10)
    names = set(response.json()["data"])
    declared = {name for spec in ALL_METRICS for name in spec.series_names}
    assert declared <= names, sorted(declared - names)
    app_names = {n for n in names if n.startswith("movierec_")}
    assert app_names == declared
    assert not {n for n in names if n.startswith("ray_movierec_")}, "relabeling did not apply"
    assert not {n for n in names if "_total_total" in n}
    assert "ray_serve_num_http_requests_total" in names  # Ray Serve's own metrics
    assert any(n.startswith("ray_node_") for n in names), sorted(names)  # and Ray's


def test_ray_exports_the_names_with_its_prefix(monitored: Monitored) -> None:
    text = httpx.get(f"{monitored.metrics_url}/metrics", timeout=10).text
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line.startswith("ray_movierec_")
    }
    assert exported == {f"ray_{name}" for spec in ALL_METRICS for name in spec.series_names}


def _sum(url: str, expr: str) -> float:
    result = query(url, f"sum({expr})")
    return float(result[0]["value"][1]) if result else 0.0


def test_counts_match_the_traffic(monitored: Monitored) -> None:
    url, traffic = monitored.prometheus, monitored.traffic
    assert traffic.cold_starts >= 2 * len(UNKNOWN_USERS) and traffic.degraded >= 11
    assert _sum(url, "movierec_cold_starts_total") == traffic.cold_starts
    assert _sum(url, "movierec_degraded_requests_total") == traffic.degraded
    assert _sum(url, 'movierec_stage_latency_seconds_count{stage="total"}') == (
        traffic.recommendations
    )
    errors = _sum(url, "ray_serve_num_http_error_requests_total")
    assert errors == traffic.errors
    served_items = _sum(url, "movierec_served_items_total")
    assert served_items == 10 * traffic.recommendations
    assert _sum(url, 'movierec_events_total{outcome="accepted"}') == traffic.events


def test_labels_stay_in_their_vocabularies(monitored: Monitored) -> None:
    url = monitored.prometheus
    stages = {s["metric"]["stage"] for s in query(url, "movierec_stage_latency_seconds_count")}
    assert (
        {"retrieval", "content", "features", "ranking", "rules", "total"} <= stages <= set(STAGES)
    )
    fallbacks = query(url, "movierec_fallbacks_total")
    assert {(s["metric"]["stage"], s["metric"]["reason"]) for s in fallbacks} >= {
        ("retrieval", "timeout"),
        ("ranking", "timeout"),
    }
    assert {s["metric"]["reason"] for s in fallbacks} <= set(REASONS)
    replicas = {s["metric"].get("deployment") for s in query(url, "movierec_ranking_score_count")}
    assert replicas == {"Controller"}
    assert {
        s["metric"].get("deployment") for s in query(url, "movierec_ranking_batch_size_count")
    } == {"Ranking"}


def test_the_cli_runs_prometheus_until_terminated(tmp_path: Path) -> None:
    """What `make monitor` runs: ready on its port, and gone with it on SIGTERM."""
    import sys

    port = free_port()
    command = [sys.executable, "-m", "monitoring.prometheus_server", "run", "--port", str(port)]
    command += ["--run-dir", str(tmp_path), "--sd-file", str(tmp_path / "absent.json")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "not ready"
            time.sleep(0.2)
        targets = httpx.get(f"{url}/api/v1/targets", timeout=5).json()["data"]
        assert targets["activeTargets"] == []  # no Ray: nothing to scrape, yet it runs
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert process.returncode == 0, output
    assert "does not exist yet" in output  # the missing target file is explained
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/-/ready", timeout=2)  # Prometheus stopped with it
