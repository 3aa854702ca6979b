"""Smoke tests: the load and served-quality benchmarks end to end, for a few seconds, on tiny
real artifacts, real Redis and a real Ray Serve app (in process), plus the real monolith.

They check that the runs complete without errors and write JSON with every key; no speed or
quality threshold is asserted (those belong to `make bench` / `make eval-served`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.conftest import app_args
from tests.deployments._artifacts import TinyArtifacts

pytestmark = pytest.mark.integration

LEVEL_KEYS = {
    "concurrency",
    "window_s",
    "warmup_s",
    "requests",
    "ok",
    "errors",
    "error_rate",
    "rps",
    "good",
    "goodput",
    "degraded",
    "degraded_share",
    "fallbacks",
    "cold_start",
    "latency_ms",
    "server_ms",
    "overhead_ms",
    "stages",
    "status_codes",
    "loadgen_cpu",
    "server_cpu",
    "rss_bytes",
    "machine_cpu_busy",
    "load_average",
}
PERCENTILE_KEYS = {"n", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms"}


def test_load_benchmark_writes_every_key(tiny: tuple[Path, TinyArtifacts], tmp_path: Path) -> None:
    from benchmarks.capacity import SearchSettings
    from benchmarks.load import CapacityOptions, LoadOptions, run, write
    from benchmarks.load_render import markdown_tables
    from benchmarks.load_report import TARGETS
    from benchmarks.processes import ROLES

    run_dir, artifacts = tiny
    options = LoadOptions(
        concurrency=(1, 2),
        warmup_s=0.5,
        duration_s=1.5,
        floor_requests=20,
        prime_s=0.5,
        out_dir=tmp_path,
        app_args=app_args(run_dir, artifacts),
        monolith_workers=2,
        idle_s=1.0,
        capacity=CapacityOptions(
            search=SearchSettings(start_rate=4.0, max_probes=2, time_cap_s=10.0),
            probe_warmup_s=0.5,
            probe_duration_s=1.0,
        ),
    )
    json_path, png_path = write(run(options), tmp_path)
    report = json.loads(json_path.read_text())
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    assert set(report) >= {"machine", "load_average", "setup", "systems", "ratios", "floor"}
    assert set(report["targets"]) == set(TARGETS)
    systems = ["serve", "monolith", "monolith_n"]
    assert set(report["systems"]) == set(systems)
    assert report["setup"]["monolith_workers"] == 2
    assert report["setup"]["order"] == [systems, systems[::-1]]
    for system in systems:
        idle = report["systems"][system]["idle"]
        assert idle["window_s"] > 0 and set(idle["cores_by_role"]) <= set(ROLES), system
        levels = report["systems"][system]["levels"]
        assert [lv["concurrency"] for lv in levels] == [1, 2]
        for lv in levels:
            assert set(lv) >= LEVEL_KEYS, system
            assert lv["ok"] > 0 and lv["errors"] == 0, (system, lv["status_codes"])
            assert lv["good"] + lv["degraded"] == lv["ok"]
            assert lv["cold_start"] == 0  # known users only
            assert set(lv["latency_ms"]) == PERCENTILE_KEYS
            assert {"features", "retrieval", "ranking"} <= set(lv["stages"]), lv["stages"]
            cpu = lv["server_cpu"]
            assert cpu["pids"] >= 1 and cpu["idle_subtracted"] is True
            assert set(cpu["by_role"]) <= set(ROLES)
            assert lv["rss_bytes"]["total"] > 0
            if system == "serve":  # the in-process app's replicas, from serve.status()
                assert {"controller", "ranking", "raylet", "gcs"} <= set(cpu["by_role"])
                assert set(lv["replicas"]) == {
                    "Controller",
                    "Retrieval",
                    "Features",
                    "Content",
                    "Ranking",
                    "Events",
                }
                assert all(n >= 1 for n in lv["replicas"].values())
            else:
                assert "monolith" in cpu["by_role"]
        # the N-worker monolith is a supervisor plus N workers
        if system == "monolith_n":
            assert levels[0]["server_cpu"]["pids"] >= 3
    for system in systems:
        capacity = report["capacity"][system]
        assert 1 <= len(capacity["probes"]) <= 2
        assert capacity["capacity_rps"] >= 0.0
        assert capacity["criteria"]["p99_budget_ms"] == 150.0
        assert {"passed", "offered", "good", "bad_share", "p99_ms"} <= set(capacity["probes"][0])
    assert [r["concurrency"] for r in report["ratios"]] == [1, 2]
    assert {"goodput_serve_over_monolith", "goodput_serve_over_monolith_n"} <= set(
        report["ratios"][0]
    )
    floor = report["floor"]
    assert floor["requests"] == 20
    assert set(floor["recommend"]) == PERCENTILE_KEYS
    assert {"retrieval.candidates", "features.user", "ranking.rank"} <= set(floor["stage_calls"])
    text = markdown_tables(report)
    assert "| CPU ms per goodput answer, net of idle |" in text
    assert "| Controller replica(s) |" in text
    assert "fully personalized capacity" in text


def test_served_quality_writes_every_key(tiny: tuple[Path, TinyArtifacts], tmp_path: Path) -> None:
    from benchmarks.common import write_json
    from benchmarks.served_quality import markdown_table, run
    from benchmarks.stack import ServeConfig

    run_dir, artifacts = tiny
    config = ServeConfig.load().with_overrides(args=app_args(run_dir, artifacts))
    report = run(config, None, 10, 4, with_offline=False)
    data = json.loads(write_json(tmp_path / "served_quality.json", report).read_text())
    assert set(data["served"]) == {"rules_on", "rules_off"}
    for name, result in data["served"].items():
        assert {"ndcg@10", "precision@10", "recall@10", "map@10"} <= set(result), name
        assert {"catalog_coverage", "genres_per_top10", "genre_cap_compliance"} <= set(result)
        assert result["replay"]["requests"] == data["setup"]["users"] > 0
    assert data["served"]["rules_on"]["genre_cap_compliance"] == 1.0
    assert data["offline"] is None
    assert "ndcg@10" in data["popularity"]
    assert "served, rules off" in markdown_table(data)
