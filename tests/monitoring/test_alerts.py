"""The alerting rules (monitoring/alerts.yml): valid for promtool, their unit tests pass, they
read only metrics that exist, and the Prometheus of `make monitor` loads them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from benchmarks.stack import free_port
from deployments.observability.definitions import ALL_METRICS
from monitoring.prometheus_server import (
    CONFIG_FILE,
    PrometheusError,
    find_binary,
    load_config,
    render_config,
    running_prometheus,
)

MONITORING = CONFIG_FILE.parent
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts_test.yml"
SERVE_METRICS = frozenset(
    {
        "ray_serve_num_http_requests_total",
        "ray_serve_num_http_error_requests_total",
        "ray_serve_deployment_replica_healthy",
        "ray_serve_autoscaling_target_replicas",
    }
)
"""Ray Serve's metrics the rules read (the dashboards read them too)."""


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        binary = find_binary("promtool")
    except PrometheusError as exc:
        pytest.fail(f"{exc} (`make prometheus` installs it)")
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, check=False, timeout=120
    )


def _rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    tested = _promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_has_a_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in _rules()}


def test_the_rules_read_existing_metrics_and_name_no_stage() -> None:
    ours = {name for spec in ALL_METRICS for name in spec.series_names}
    for rule in _rules():
        expr = rule["expr"]
        for name in re.findall(r"\b(movierec_[a-z_]+)\b", expr):
            assert name in ours, f"{rule['alert']}: no metric {name}"
        for name in re.findall(r"\b(ray_serve_[a-z_]+)\b", expr):
            assert name in SERVE_METRICS, f"{rule['alert']}: unknown Serve metric {name}"
        # Stage names change (vector_search -> content): only the request total is named.
        assert set(re.findall(r'stage\s*=~?\s*"([^"]*)"', expr)) <= {"total"}, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_the_committed_config_loads_the_rules(tmp_path: Path) -> None:
    assert load_config()["rule_files"] == ["alerts.yml"]
    rendered = render_config(load_config(), sd_file=tmp_path / "sd.json")
    assert rendered["rule_files"] == [str(RULES)]
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(rendered))
    checked = _promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 1 rule files found" in checked.stdout


@pytest.mark.integration
def test_prometheus_as_make_monitor_runs_it_serves_the_alerts(tmp_path: Path) -> None:
    config = render_config(load_config(), sd_file=tmp_path / "sd.json", scrape_interval="1s")
    with running_prometheus(config, tmp_path / "prometheus", free_port()) as url:
        body = httpx.get(f"{url}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
    loaded = {rule["name"] for group in body["data"]["groups"] for rule in group["rules"]}
    assert loaded == {rule["alert"] for rule in _rules()}
