"""The Grafana dashboards, as code: `python -m monitoring.dashboards` writes their JSON.

Three dashboards, all on the provisioned Prometheus datasource (uid `movierec-prometheus`):

* service overview (`movierec-service`): Ray Serve's own metrics (HTTP requests, errors,
  latency, replicas, queues) and the request path's (per-stage latency quantiles, ranking
  batches, candidates per source, source overlap);
* model health (`movierec-model`): ranker score distribution over time, catalog coverage,
  popularity bias, fallback rates, degraded and cold-start shares, genre mix;
* real-time feedback (`movierec-feedback`): events by type and outcome, the event-to-online
  lag, the click-through rate by model version, the impression logs.

Every UID is fixed and the JSON is written with sorted keys, so regenerating gives the
committed files byte for byte (a test checks it). `--check` only compares.

The app's metric names are those of `deployments.observability.definitions` as stored in
Prometheus (`monitoring/prometheus.yml` strips Ray's `ray_` prefix from them); Ray Serve's
built-in metrics keep theirs (`ray_serve_*`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployments.observability import definitions as d

DASHBOARDS_DIR = Path(__file__).resolve().parent / "grafana" / "dashboards"
DATASOURCE: dict[str, str] = {"type": "prometheus", "uid": "movierec-prometheus"}
"""The datasource every panel and query uses (see grafana/provisioning/datasources)."""

RATE = "$__rate_interval"
"""Grafana's rate window: at least four scrape intervals."""

COLUMNS = 24
"""Grafana's grid width."""


def _rate(name: str, by: str = "") -> str:
    group = f" by ({by})" if by else ""
    return f"sum{group} (rate({name}[{RATE}]))"


def _quantile(q: float, histogram: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({q}, sum by ({labels}) (rate({histogram}_bucket[{RATE}])))"


def _mean(histogram: str, by: str = "") -> str:
    return f"{_rate(f'{histogram}_sum', by)} / {_rate(f'{histogram}_count', by)}"


def _share(counter: str, by: str, total: str) -> str:
    """`counter`'s rate by `by`, divided by the rate of `total` (a single series)."""
    return f"{_rate(counter, by)} / on() group_left() {_rate(total)}"


REQUESTS = f'{d.STAGE_LATENCY.name}_count{{stage="total"}}'
"""One sample per answered recommendation request: the denominator of the shares."""


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel, and its legend."""

    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    """A dashboard panel.

    Attributes:
        title: Shown above the panel.
        description: The (i) tooltip: what the panel shows and how to read it.
        queries: Its PromQL queries.
        unit: Grafana unit of the values ("s", "reqps", "percentunit", "short", ...).
        kind: "timeseries" or "heatmap".
        width: Grid columns (of 24).
        stack: Stack the series (shares that add up).
    """

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    stack: bool = False


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: a fixed UID, a title and its panels, laid out left to right."""

    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)

    @property
    def file_name(self) -> str:
        """The JSON file it is written to."""
        return f"{self.uid}.json"


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
    targets = [
        {
            "datasource": DATASOURCE,
            "expr": query.expr,
            "legendFormat": query.legend,
            "range": True,
            "refId": chr(ord("A") + i),
            **({"format": "heatmap"} if panel.kind == "heatmap" else {}),
        }
        for i, query in enumerate(panel.queries)
    ]
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "targets": targets,
    }
    if panel.kind == "heatmap":
        body["options"] = {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "yAxis": {"axisPlacement": "left", "unit": panel.unit},
            "legend": {"show": True},
            "tooltip": {"mode": "single", "yHistogram": True},
        }
        body["fieldConfig"] = {"defaults": {}, "overrides": []}
    else:
        custom: dict[str, Any] = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
        if panel.stack:
            custom.update(fillOpacity=60, stacking={"group": "A", "mode": "normal"})
        body["fieldConfig"] = {
            "defaults": {"unit": panel.unit, "min": 0, "custom": custom},
            "overrides": [],
        }
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    return body


def dashboard_json(dashboard: Dashboard, height: int = 8) -> dict[str, Any]:
    """The Grafana JSON model of `dashboard` (panels placed row by row)."""
    panels = []
    x = y = 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > COLUMNS:
            x, y = 0, y + height
        panels.append(_panel_json(panel, panel_id, x, y, height))
        x += panel.width
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["movierec"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "10s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-30m", "to": "now"},
        "timezone": "",
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": panels,
    }


def render(dashboard: Dashboard) -> str:
    """The JSON text written for `dashboard` (deterministic)."""
    return json.dumps(dashboard_json(dashboard), indent=2, sort_keys=True) + "\n"


def _stage_quantile(q: float) -> Panel:
    percent = round(q * 100)
    return Panel(
        f"Stage latency p{percent}",
        f"{percent}th percentile of each stage's latency (Controller side: a stage call "
        "includes the DeploymentHandle hop), and of the whole request (total).",
        (Query(_quantile(q, d.STAGE_LATENCY.name, "stage"), "{{stage}}"),),
        unit="s",
        width=8,
    )


SERVICE = Dashboard(
    uid="movierec-service",
    title="movierec: service overview",
    description="Traffic, errors, latency per stage, replicas and queues of the Serve app.",
    panels=(
        Panel(
            "Requests per second",
            "HTTP requests answered by the Serve proxy, by route.",
            (Query(_rate("ray_serve_num_http_requests_total", "route"), "{{route}}"),),
            unit="reqps",
            width=8,
        ),
        Panel(
            "HTTP error share",
            "Share of HTTP answers with a 4xx (client input) or 5xx (the app) status.",
            (
                Query(
                    f"{_rate('ray_serve_num_http_error_requests_total')} / "
                    f"{_rate('ray_serve_num_http_requests_total')}",
                    "errors",
                ),
            ),
            unit="percentunit",
            width=8,
        ),
        Panel(
            "HTTP errors per second",
            "HTTP answers with a 4xx or 5xx status, by status and route.",
            (
                Query(
                    _rate("ray_serve_num_http_error_requests_total", "error_code, route"),
                    "{{error_code}} {{route}}",
                ),
            ),
            unit="reqps",
            width=8,
        ),
        _stage_quantile(0.5),
        _stage_quantile(0.95),
        _stage_quantile(0.99),
        Panel(
            "HTTP latency (proxy)",
            "End-to-end latency seen by the Serve HTTP proxy, all routes.",
            tuple(
                Query(_quantile(q, "ray_serve_http_request_latency_ms") + " / 1000", f"p{p}")
                for q, p in ((0.5, 50), (0.95, 95), (0.99, 99))
            ),
            unit="s",
        ),
        Panel(
            "Replica processing latency p95",
            "95th percentile of the time a replica spends on one call, by deployment.",
            (
                Query(
                    _quantile(0.95, "ray_serve_deployment_processing_latency_ms", "deployment")
                    + " / 1000",
                    "{{deployment}}",
                ),
            ),
            unit="s",
        ),
        Panel(
            "Replicas per deployment",
            "Healthy replicas, and the autoscaler's target, by deployment.",
            (
                Query(
                    "sum by (deployment) (ray_serve_deployment_replica_healthy)",
                    "{{deployment}} healthy",
                ),
                Query(
                    "max by (deployment) (ray_serve_autoscaling_target_replicas)",
                    "{{deployment}} target",
                ),
            ),
        ),
        Panel(
            "Queued requests",
            "Requests waiting in the routers for a replica of each deployment (queue length).",
            (Query("sum by (deployment) (ray_serve_deployment_queued_queries)", "{{deployment}}"),),
        ),
        Panel(
            "Requests in replicas",
            "Requests being processed by the replicas of each deployment.",
            (
                Query(
                    "sum by (deployment) (ray_serve_replica_processing_queries)",
                    "{{deployment}}",
                ),
            ),
        ),
        Panel(
            "Ranking batch size",
            "Requests scored together by one ranker call (dynamic batching): mean and p95.",
            (
                Query(_mean(d.RANKING_BATCH_SIZE.name), "mean"),
                Query(_quantile(0.95, d.RANKING_BATCH_SIZE.name), "p95"),
            ),
        ),
        Panel(
            "Candidates per source",
            "Mean candidates each source proposed per request (popular: only in fallbacks).",
            (Query(_mean(d.SOURCE_CANDIDATES.name, "source"), "{{source}}"),),
        ),
        Panel(
            "Source overlap",
            "Mean share of a request's merged candidates that more than one source proposed.",
            (Query(_mean(d.SOURCE_OVERLAP.name), "overlap"),),
            unit="percentunit",
        ),
    ),
)

MODEL = Dashboard(
    uid="movierec-model",
    title="movierec: model health",
    description="What the models serve: scores, coverage, popularity bias, fallbacks, genres.",
    panels=(
        Panel(
            "Ranker score distribution",
            "Ranker scores of the ranked candidates over time (count per score bucket). A "
            "shift means the model, its features or the traffic changed.",
            (Query(f"sum by (le) (increase({d.RANKING_SCORE.name}_bucket[{RATE}]))", "{{le}}"),),
            kind="heatmap",
        ),
        Panel(
            "Ranker score quantiles",
            "10th, 50th and 90th percentiles of the ranker scores.",
            tuple(
                Query(_quantile(q, d.RANKING_SCORE.name), f"p{round(q * 100)}")
                for q in (0.1, 0.5, 0.9)
            ),
        ),
        Panel(
            "Catalog coverage",
            "Distinct movies served over the coverage window (user_config.monitoring), over "
            "the catalog size. Per Controller replica; the max over replicas is a lower bound "
            "of the global coverage.",
            (
                Query(f"max({d.COVERAGE.name})", "max over replicas"),
                Query(f"max by (replica) ({d.COVERAGE.name})", "replica {{replica}}"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Popularity bias",
            "Mean popularity percentile of the served movies (1: the most rated movie). "
            "Rising toward 1: the recommender drifts to the head of the catalog.",
            (Query(_mean(d.POPULARITY.name), "mean percentile"),),
            unit="percentunit",
        ),
        Panel(
            "Fallback rate",
            "Fallbacks per recommendation request, by stage and reason.",
            (Query(_share(d.FALLBACKS.name, "stage, reason", REQUESTS), "{{stage}} {{reason}}"),),
            unit="percentunit",
        ),
        Panel(
            "Degraded and cold-start requests",
            "Share of recommendation requests answered degraded (a fallback) or for an "
            "unknown user (cold start).",
            (
                Query(f"{_rate(d.DEGRADED.name)} / {_rate(REQUESTS)}", "degraded"),
                Query(f"{_rate(d.COLD_STARTS.name)} / {_rate(REQUESTS)}", "cold start"),
            ),
            unit="percentunit",
        ),
        Panel(
            "Genre mix of served movies",
            "Share of served movies having each genre (a movie counts for each of its "
            "genres, so the shares add up to more than 1).",
            (Query(_share(d.SERVED_GENRE_ITEMS.name, "genre", d.SERVED_ITEMS.name), "{{genre}}"),),
            unit="percentunit",
            width=24,
            stack=True,
        ),
        Panel(
            "Cold starts per second",
            "Recommendation requests for unknown users.",
            (Query(_rate(d.COLD_STARTS.name), "cold starts"),),
            unit="reqps",
        ),
        Panel(
            "Served movies per second",
            "Movies in the answered recommendation lists.",
            (Query(_rate(d.SERVED_ITEMS.name), "movies"),),
        ),
    ),
)

EVENTS_BY = d.EVENTS.name
REFUSED = 'outcome=~"rejected|unavailable|rate_limited"'


def _ctr(by: str) -> str:
    clicks = _rate(f'{d.FEEDBACK.name}{{type="click"}}', by)
    impressions = _rate(f'{d.FEEDBACK.name}{{type="impression"}}', by)
    return f"{clicks} / {impressions}"


FEEDBACK = Dashboard(
    uid="movierec-feedback",
    title="movierec: real-time feedback",
    description="Events posted and applied, feature freshness, click-through rate by model.",
    panels=(
        Panel(
            "Events per second",
            "Events posted to POST /events, by type and outcome: accepted, duplicate (a "
            "repeated event_id), rejected (422: every event of the request), unavailable "
            "(503), rate_limited (429).",
            (Query(_rate(EVENTS_BY, "type, outcome"), "{{type}} {{outcome}}"),),
            width=8,
        ),
        Panel(
            "Refused events share",
            "Share of the posted events not logged (rejected, unavailable or rate limited).",
            (Query(f"{_rate(f'{EVENTS_BY}{{{REFUSED}}}')} / {_rate(EVENTS_BY)}", "refused"),),
            unit="percentunit",
            width=8,
        ),
        Panel(
            "Event-to-online lag",
            "Feature freshness: from an event's receipt by the API (before its 202) to its "
            "user's features written online by the applier; p50, p95, p99.",
            tuple(
                Query(_quantile(q, d.EVENT_LAG.name), f"p{round(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ),
            unit="s",
            width=8,
        ),
        Panel(
            "Click-through rate by model version",
            "Clicks over impressions logged, by the model_version that served the list "
            "(server-side impression logs) or that the receiving Controller serves (posted "
            "events).",
            (Query(_ctr("model_version"), "{{model_version}}"),),
            unit="percentunit",
        ),
        Panel(
            "Impression logs",
            "Served lists the Controller logged as impressions per second, by outcome "
            "(dropped: its queue was full; user_config.impressions.log_served).",
            (Query(_rate(d.IMPRESSION_LOGS.name, "outcome"), "{{outcome}}"),),
        ),
    ),
)

DASHBOARDS: tuple[Dashboard, ...] = (SERVICE, MODEL, FEEDBACK)


def expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard's JSON model, in panel order."""
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def write(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Writes every dashboard's JSON into `directory`; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for dashboard in DASHBOARDS:
        path = directory / dashboard.file_name
        path.write_text(render(dashboard))
        paths.append(path)
    return paths


def stale(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """The dashboard files in `directory` that differ from what this module renders."""
    out = []
    for dashboard in DASHBOARDS:
        path = directory / dashboard.file_name
        if not path.exists() or path.read_text() != render(dashboard):
            out.append(path)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m monitoring.dashboards [--check] [--out DIR]`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="output directory")
    parser.add_argument(
        "--check", action="store_true", help="only check that the files are up to date"
    )
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale(args.out)
        for path in outdated:
            print(f"{path} is out of date: run python -m monitoring.dashboards", file=sys.stderr)
        return 1 if outdated else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
