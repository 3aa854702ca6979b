"""Unit tests of the load benchmark's report logic (pure: no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.load_report import (
    TARGETS,
    check_targets,
    markdown_tables,
    parse_server_timing,
    plot,
    ratios,
    summarize_level,
)


def _raw(concurrency: int, samples: list[list[Any]], window: float = 2.0) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "window_s": window,
        "warmup_s": 1.0,
        "samples": samples,
        "cpu_s": 0.5,
        "server_cpu_s": 1.0,
        "server_pids": [1, 2],
        "machine_cpu_busy": 0.5,
        "load_average": [1.0, 1.0, 1.0],
    }


def test_parse_server_timing_reads_durations_and_skips_entries_without_one() -> None:
    header = 'features;dur=2.10, retrieval;desc="x";dur=3, cache, total;dur=9.5'
    assert parse_server_timing(header) == {"features": 2.1, "retrieval": 3.0, "total": 9.5}
    assert parse_server_timing("") == {}
    assert parse_server_timing("a;dur=nan, b;dur=oops") == {}


def test_summarize_level_counts_errors_and_splits_server_time_from_overhead() -> None:
    samples = [
        [10.0, 200, 0, "features;dur=2, ranking;dur=3, total;dur=8"],
        [12.0, 200, 1, "features;dur=4, ranking;dur=5, total;dur=10"],
        [50.0, 500, 0, ""],
        [30.0, 0, 0, ""],
    ]
    lv = summarize_level(_raw(4, samples))
    assert lv["requests"] == 4
    assert lv["ok"] == 2
    assert lv["errors"] == 2
    assert lv["error_rate"] == pytest.approx(0.5)
    assert lv["rps"] == pytest.approx(1.0)  # 2 answers in a 2 s window
    assert lv["degraded"] == 1
    assert lv["latency_ms"]["p50_ms"] == pytest.approx(11.0)  # only successful answers
    assert lv["server_ms"]["p50_ms"] == pytest.approx(9.0)
    assert lv["overhead_ms"]["p50_ms"] == pytest.approx(2.0)
    assert set(lv["stages"]) == {"features", "ranking"}
    assert lv["stages"]["ranking"]["mean_ms"] == pytest.approx(4.0)
    assert lv["status_codes"] == {"0": 1, "200": 2, "500": 1}
    assert lv["loadgen_cpu"]["ms_per_request"] == pytest.approx(125.0)
    assert lv["server_cpu"]["cores"] == pytest.approx(0.5)


def test_summarize_level_without_successes_has_no_latency() -> None:
    lv = summarize_level(_raw(1, [[5.0, 503, 0, ""]]))
    assert lv["latency_ms"] is None
    assert lv["rps"] == 0.0
    assert lv["error_rate"] == 1.0


def _level(concurrency: int, p50: float, p99: float, rps: float, errors: int = 0) -> dict:
    return {
        "concurrency": concurrency,
        "rps": rps,
        "ok": 10,
        "errors": errors,
        "degraded": 0,
        "latency_ms": {"p50_ms": p50, "p95_ms": p99, "p99_ms": p99},
        "server_ms": {"p50_ms": p50 - 1},
        "overhead_ms": {"p50_ms": 1.0, "mean_ms": 1.0},
        "stages": {"features": {"p50_ms": 1.0, "mean_ms": 1.0, "n": 10}},
        "server_cpu": {"ms_per_request": 5.0},
    }


def test_ratios_and_targets() -> None:
    serve = [_level(1, 12.0, 20.0, 80.0), _level(16, 60.0, 90.0, 200.0)]
    mono = [_level(1, 8.0, 10.0, 120.0), _level(16, 50.0, 70.0, 300.0)]
    (r1, r16) = ratios(serve, mono)
    assert r1["p50_serve_over_monolith"] == pytest.approx(1.5)
    assert r16["rps_serve_over_monolith"] == pytest.approx(200 / 300)
    targets = check_targets(serve, mono)
    assert set(targets) == set(TARGETS)
    assert targets["serve_p50_ms_at_c1"]["met"] is True
    assert targets["serve_rps_at_c16"]["met"] is True
    assert targets["p50_ratio_at_c1"]["met"] is True
    assert targets["rps_ratio_at_c16"]["met"] is False
    assert targets["serve_errors_at_c16"]["met"] is True


def test_targets_not_measured_are_none() -> None:
    targets = check_targets([_level(4, 10.0, 20.0, 50.0)], [])
    assert all(t["met"] is None and t["value"] is None for t in targets.values())


def test_markdown_and_plot(tmp_path: Path) -> None:
    serve = [_level(1, 12.0, 20.0, 80.0), _level(16, 60.0, 90.0, 200.0)]
    for lv in serve:
        lv["replicas"] = {"Controller": 1, "Retrieval": 2, "Features": 1, "Content": 1}
        lv["replicas"]["Ranking"] = 1
    mono = [_level(1, 8.0, 10.0, 120.0), _level(16, 50.0, 70.0, 300.0)]
    report = {
        "systems": {"serve": {"levels": serve}, "monolith": {"levels": mono}},
        "ratios": ratios(serve, mono),
        "floor": {"recommend": {"p50_ms": 5.0, "p99_ms": 9.0}, "stage_calls": {}},
        "targets": check_targets(serve, mono),
    }
    text = markdown_tables(report)
    assert "| serve | 16 | 200 | 60.0 |" in text
    assert text.count("| 1/2/1/1/1 |") == 2  # the Serve levels' replicas
    assert "| stage `features` | 1.00 | 1.00 |" in text
    assert "| 1 | 1.50 | 0.67 |" in text
    assert "**no**" in text  # the missed RPS ratio is shown, not hidden
    path = plot(report, tmp_path / "load.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
