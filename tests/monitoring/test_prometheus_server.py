"""The committed Prometheus configuration and its rendering for another Ray instance."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from monitoring.prometheus_server import (
    CONFIG_FILE,
    PrometheusError,
    load_config,
    render_config,
    sd_files,
)


def test_the_ray_job_reads_the_target_file_ray_writes() -> None:
    from ray._common.utils import get_default_ray_temp_dir
    from ray._private.ray_constants import PROMETHEUS_SERVICE_DISCOVERY_FILE

    expected = os.path.join(get_default_ray_temp_dir(), PROMETHEUS_SERVICE_DISCOVERY_FILE)
    assert sd_files(load_config()) == [expected]


def test_the_app_metrics_lose_rays_prefix() -> None:
    (job,) = load_config()["scrape_configs"]
    rules = job["metric_relabel_configs"]
    rename = next(r for r in rules if r.get("target_label") == "__name__")
    pattern = re.compile(rename["regex"])
    match = pattern.fullmatch("ray_movierec_stage_latency_seconds_bucket")
    assert match is not None
    assert rename["replacement"].replace("$1", match.group(1)) == (
        "movierec_stage_latency_seconds_bucket"
    )
    assert pattern.fullmatch("ray_serve_num_http_requests_total") is None  # Serve's stay


def test_render_replaces_the_target_file_and_intervals(tmp_path: Path) -> None:
    base = load_config()
    rendered = render_config(base, sd_file=tmp_path / "sd.json", scrape_interval="1s")
    assert sd_files(rendered) == [str(tmp_path / "sd.json")]
    assert rendered["global"]["scrape_interval"] == "1s"
    assert rendered["global"]["evaluation_interval"] == "1s"
    assert (
        rendered["scrape_configs"][0]["metric_relabel_configs"]
        == (base["scrape_configs"][0]["metric_relabel_configs"])
    )
    assert sd_files(base) != sd_files(rendered)  # the committed config is untouched


def test_a_config_without_the_ray_job_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match="no scrape job"):
        render_config({"scrape_configs": [{"job_name": "other"}]}, sd_file=tmp_path)
    assert CONFIG_FILE.exists()
