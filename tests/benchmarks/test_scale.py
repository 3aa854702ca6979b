"""The scale benchmark: argument checks and budget (unit), and a smoke run at tiny sizes.

The smoke runs start the real thing (embedded Redis, Feast, TensorFlow, the ScaNN venv) in a
subprocess and check the JSON's shape and value ranges; they assert nothing about speed.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks.scale import BuildBudget, ScaleParams, parse_args

ROOT = Path(__file__).resolve().parents[2]
LATENCY_KEYS = {"n", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms"}
METHOD_KEYS = {
    "build_s",
    "build_cpu_s",
    "single_ms",
    "batch_ms",
    "recall_at_k",
    "recall_at_10",
    "bytes_per_item",
    "memory",
}
MEMORY_KEYS = {
    "bruteforce": {"tensor_bytes_per_item", "rss_delta_bytes_per_item"},
    "scann": {"serialized_bytes_per_item", "rss_delta_bytes_per_item"},
    "redis_hnsw": {"used_memory_delta_bytes_per_item", "vector_index_bytes_per_item"},
}
TINY = [
    "--dims", "16", "--queries", "8", "--batch-size", "4", "--batches", "3", "--k", "10",
    "--warmup", "2", "--feast-candidates", "10,50", "--feast-queries", "3",
]  # fmt: skip


def test_parse_args_defaults_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    params, args = parse_args([])
    assert params.sizes == (10_000, 100_000, 1_000_000) and params.dims == (64, 384)
    assert params.feast_candidates == (100, 300, 1000) and args.readme is None
    params, _ = parse_args(["--sizes", "2000,500,500", "--no-scann"])
    assert params.sizes == (500, 2000) and not params.scann
    for bad in (["--sizes", "10,x"], ["--sizes", "0"], ["--queries", "0"], ["--dims", "1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert "error" in capsys.readouterr().err


def test_budget_skips_only_what_extrapolates_over_it() -> None:
    budget = BuildBudget(budget_s=100.0)
    assert budget.over("redis_hnsw", 64, 10**6) is None  # nothing measured yet
    budget.record("redis_hnsw", 64, 10_000, 2.0)
    assert budget.estimate("redis_hnsw", 64, 100_000) == pytest.approx(20.0)
    assert budget.over("redis_hnsw", 64, 100_000) is None
    reason = budget.over("redis_hnsw", 64, 1_000_000)
    assert reason is not None and "200 CPU-s" in reason and "--build-budget-s 100" in reason
    assert budget.over("redis_hnsw", 384, 1_000_000) is None  # other dim: no rate
    assert budget.skip("feast", 10**6, None, reason) == {"skipped": reason}
    assert budget.skipped == [{"method": "feast", "size": 10**6, "dim": None, "reason": reason}]


def _run(out_dir: Path, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", *TINY, "--out-dir", str(out_dir), *extra],
        cwd=ROOT,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out_dir / "scale.png").read_bytes().startswith(b"\x89PNG")
    return json.loads((out_dir / "scale.json").read_text())


def _check_latency(summary: dict[str, Any], n: int) -> None:
    assert set(summary) == LATENCY_KEYS
    assert summary["n"] == n
    assert 0 <= summary["min_ms"] <= summary["p50_ms"] <= summary["p95_ms"] <= summary["max_ms"]
    assert all(math.isfinite(v) for v in summary.values())


def _check_header(payload: dict[str, Any], sizes: list[int]) -> None:
    assert payload["benchmark"] == "scale"
    machine = payload["machine"]
    assert machine["cpu_count"] >= 1 and machine["cpu_model"]
    for package in ("python",):
        assert machine[package]
    for package in ("tensorflow", "ray", "redis", "feast", "redis_server", "module_search"):
        assert machine["versions"][package], package
    assert [len(payload["load_average"][w]) for w in ("before", "after")] == [3, 3]
    assert payload["parameters"]["sizes"] == sizes
    assert set(ScaleParams.__dataclass_fields__) - {"scann_python"} == set(payload["parameters"])
    assert payload["duration_s"] > 0
    assert payload["dataset"]["items_per_cluster"] > 0


@pytest.mark.integration
def test_smoke_run_writes_every_key(tmp_path: Path) -> None:
    payload = _run(tmp_path, "--sizes", "500,2000")
    _check_header(payload, [500, 2000])
    assert payload["machine"]["versions"]["scann"]
    assert payload["skipped"] == []
    assert [(e["size"], e["dim"]) for e in payload["results"]] == [(500, 16), (2000, 16)]
    for entry in payload["results"]:
        assert set(entry["methods"]) == set(MEMORY_KEYS)
        for name, result in entry["methods"].items():
            assert set(result) >= METHOD_KEYS, name
            _check_latency(result["single_ms"], 8)
            _check_latency(result["batch_ms"], 3)
            assert 0.0 <= result["recall_at_10"] <= 1.0 and 0.0 <= result["recall_at_k"] <= 1.0
            assert result["build_s"] > 0 and result["build_cpu_s"] > 0
            assert result["bytes_per_item"] > 0
            assert set(result["memory"]) == MEMORY_KEYS[name]
        # Exact search is exact, and 16-d floats tie too rarely to swap the top 10.
        assert entry["methods"]["bruteforce"]["recall_at_k"] == 1.0
        assert entry["methods"]["bruteforce"]["bytes_per_item"] == 16 * 4 + 8
    assert payload["coverage"]["redis_hnsw"] == {"16": [500, 2000]}
    for entry in payload["feast"]:
        assert entry["read_path"] == "precomputed ranker_movie_v1 vectors"
        assert set(entry["reads"]) == {"10", "50"}
        for read in entry["reads"].values():
            _check_latency(read["sync_ms"], 3)
            _check_latency(read["async_ms"], 3)
        write = entry["write"]
        assert write["materialize_s"] > 0 and write["materialize_cpu_s"] > 0
        assert write["used_memory_delta_bytes_per_item"] > 0


@pytest.mark.integration
def test_skips_are_recorded_with_their_reason(tmp_path: Path) -> None:
    payload = _run(tmp_path, "--sizes", "300,600", "--no-scann", "--build-budget-s", "1e-6")
    _check_header(payload, [300, 600])
    skipped = {(s["method"], s["size"]): s["reason"] for s in payload["skipped"]}
    assert skipped[("scann", 300)] == skipped[("scann", 600)] == "--no-scann"
    assert "exceeds --build-budget-s" in skipped[("redis_hnsw", 600)]
    assert "exceeds --build-budget-s" in skipped[("feast", 600)]
    assert ("redis_hnsw", 300) not in skipped and ("feast", 300) not in skipped
    small, large = payload["results"]
    assert "skipped" not in small["methods"]["redis_hnsw"]
    assert large["methods"]["redis_hnsw"] == {"skipped": skipped[("redis_hnsw", 600)]}
    assert "reads" in payload["feast"][0] and payload["feast"][1]["skipped"]
    assert payload["coverage"]["feast"] == {"any": [300]}
    assert "scann" not in payload["coverage"]
