"""The Grafana dashboards and provisioning: valid JSON, a datasource and a query on every
panel, stable UIDs, and the committed files are exactly what the generator writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitoring import dashboards
from monitoring.dashboards import DASHBOARDS, DASHBOARDS_DIR, DATASOURCE, expressions

PROVISIONING = DASHBOARDS_DIR.parent / "provisioning"
UIDS = {"movierec-service", "movierec-model", "movierec-feedback"}
"""Grafana links and bookmarks use these: changing one is a breaking change."""


def _committed() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def test_committed_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = dashboards.write(tmp_path)
    assert {p.name for p in written} == {p.name for p in DASHBOARDS_DIR.glob("*.json")}
    for path in written:
        assert path.read_bytes() == (DASHBOARDS_DIR / path.name).read_bytes(), (
            f"{path.name} is stale: run python -m monitoring.dashboards"
        )
    assert dashboards.stale() == []
    assert dashboards.main(["--check"]) == 0


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    dashboards.write(tmp_path)
    (tmp_path / "movierec-model.json").write_text("{}\n")
    assert dashboards.stale(tmp_path) == [tmp_path / "movierec-model.json"]
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 1


def test_uids_are_stable_and_unique() -> None:
    committed = _committed()
    assert {d["uid"] for d in committed.values()} == UIDS
    assert {d.uid for d in DASHBOARDS} == UIDS
    for name, dashboard in committed.items():
        assert name == f"{dashboard['uid']}.json"
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert ids == list(range(1, len(ids) + 1)), name  # stable panel ids, in order


@pytest.mark.parametrize(
    "name", ["movierec-service.json", "movierec-model.json", "movierec-feedback.json"]
)
def test_every_panel_has_a_datasource_and_a_query(name: str) -> None:
    dashboard = _committed()[name]
    assert dashboard["panels"], name
    for panel in dashboard["panels"]:
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["description"], title
        assert panel["targets"], f"{title}: no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(set(ref_ids)) == len(ref_ids), title
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, title


def test_panels_do_not_overlap() -> None:
    for name, dashboard in _committed().items():
        cells: set[tuple[int, int]] = set()
        for panel in dashboard["panels"]:
            g = panel["gridPos"]
            area = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & area, (name, panel["title"])
            cells |= area


def test_the_dashboards_cover_the_issue() -> None:
    service = " ".join(expressions(_committed()["movierec-service.json"]))
    for needle in (
        "ray_serve_num_http_requests_total",  # RPS
        "ray_serve_num_http_error_requests_total",  # errors
        "histogram_quantile(0.5, sum by (stage, le)",  # p50 per stage
        "histogram_quantile(0.95, sum by (stage, le)",
        "histogram_quantile(0.99, sum by (stage, le)",
        "ray_serve_deployment_replica_healthy",  # replicas per deployment
        "ray_serve_deployment_queued_queries",  # queue lengths
        "movierec_ranking_batch_size",
        "movierec_source_candidates",
        "movierec_source_overlap_ratio",
    ):
        assert needle in service, needle
    model = " ".join(expressions(_committed()["movierec-model.json"]))
    for needle in (
        "movierec_ranking_score_bucket",
        "movierec_catalog_coverage_ratio",
        "movierec_served_popularity_ratio",
        "movierec_fallbacks_total",
        "movierec_degraded_requests_total",
        "movierec_cold_starts_total",
        "movierec_served_genre_items_total",
    ):
        assert needle in model, needle
    feedback = " ".join(expressions(_committed()["movierec-feedback.json"]))
    for needle in (
        "sum by (type, outcome) (rate(movierec_events_total",  # accepted/duplicate/rejected
        "histogram_quantile(0.99, sum by (le) (rate(movierec_event_lag_seconds_bucket",
        'sum by (model_version) (rate(movierec_feedback_total{type="click"}',  # CTR
        'sum by (model_version) (rate(movierec_feedback_total{type="impression"}',
        "movierec_impression_logs_total",
    ):
        assert needle in feedback, needle


def test_provisioning_points_at_the_datasource_and_the_dashboards() -> None:
    datasources = yaml.safe_load((PROVISIONING / "datasources" / "movierec.yml").read_text())
    (source,) = datasources["datasources"]
    assert source["uid"] == DATASOURCE["uid"] and source["type"] == DATASOURCE["type"]
    assert source["url"] == "${PROMETHEUS_URL}"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "movierec.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "${MOVIEREC_GRAFANA_DASHBOARDS}"
