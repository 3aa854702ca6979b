"""Unit tests of the load benchmark's report logic (pure: no services)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.load_report import (
    TARGETS,
    check_targets,
    count_fallbacks,
    cpu_by_role,
    goodput_of,
    parse_server_timing,
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
        "server_cpu_by_role": {"controller": 0.6, "ranking": 0.4},
        "server_rss_by_role": {"controller": 100.0, "ranking": 50.0},
        "server_pids": [1, 2],
        "machine_cpu_busy": 0.5,
        "load_average": [1.0, 1.0, 1.0],
    }


def test_parse_server_timing_reads_durations_and_skips_entries_without_one() -> None:
    header = 'features;dur=2.10, retrieval;desc="x";dur=3, cache, total;dur=9.5'
    assert parse_server_timing(header) == {"features": 2.1, "retrieval": 3.0, "total": 9.5}
    assert parse_server_timing("") == {}
    assert parse_server_timing("a;dur=nan, b;dur=oops") == {}


def test_count_fallbacks_by_stage_and_reason() -> None:
    entries = ["content:timeout", "content:timeout,ranking:budget", "", "features"]
    assert count_fallbacks(entries) == {
        "content": {"timeout": 2},
        "features": {"unknown": 1},
        "ranking": {"budget": 1},
    }
    assert count_fallbacks([]) == {}


def test_summarize_level_counts_goodput_errors_and_splits_server_time() -> None:
    samples = [
        [10.0, 200, 0, "features;dur=2, ranking;dur=3, total;dur=8", "", 0],
        [12.0, 200, 1, "features;dur=4, ranking;dur=5, total;dur=10", "ranking:timeout", 0],
        [50.0, 500, 0, "", "", 0],
        [30.0, 0, 0, "", "", 0],
    ]
    lv = summarize_level(_raw(4, samples))
    assert lv["requests"] == 4
    assert lv["ok"] == 2
    assert lv["errors"] == 2
    assert lv["error_rate"] == pytest.approx(0.5)
    assert lv["rps"] == pytest.approx(1.0)  # 2 answers in a 2 s window
    assert lv["good"] == 1
    assert lv["goodput"] == pytest.approx(0.5)  # 1 full answer in 2 s
    assert lv["degraded"] == 1
    assert lv["degraded_share"] == pytest.approx(0.75)  # 1 degraded + 2 failed of 4
    assert lv["fallbacks"] == {"ranking": {"timeout": 1}}
    assert lv["cold_start"] == 0
    assert lv["latency_ms"]["p50_ms"] == pytest.approx(11.0)  # only successful answers
    assert lv["server_ms"]["p50_ms"] == pytest.approx(9.0)
    assert lv["overhead_ms"]["p50_ms"] == pytest.approx(2.0)
    assert set(lv["stages"]) == {"features", "ranking"}
    assert lv["stages"]["ranking"]["mean_ms"] == pytest.approx(4.0)
    assert lv["status_codes"] == {"0": 1, "200": 2, "500": 1}
    assert lv["loadgen_cpu"]["ms_per_request"] == pytest.approx(125.0)
    cpu = lv["server_cpu"]
    assert cpu["cores"] == pytest.approx(0.5)
    assert cpu["ms_per_good"] == pytest.approx(1000.0)  # 1 CPU s for 1 full answer
    assert cpu["idle_subtracted"] is False
    assert cpu["by_role"]["controller"]["net_ms_per_good"] == pytest.approx(600.0)
    assert lv["rss_bytes"] == {"total": 150.0, "by_role": {"controller": 100.0, "ranking": 50.0}}


def test_summarize_level_subtracts_the_idle_share() -> None:
    samples = [[10.0, 200, 0, "", "", 0]] * 4  # 4 full answers in 2 s
    lv = summarize_level(_raw(1, samples), idle_cores={"controller": 0.1, "raylet": 0.05})
    roles = lv["server_cpu"]["by_role"]
    # controller: 0.3 cores busy - 0.1 idle = 0.2 cores x 2 s / 4 answers = 100 ms
    assert roles["controller"]["net_ms_per_good"] == pytest.approx(100.0)
    assert roles["ranking"]["net_ms_per_good"] == pytest.approx(100.0)  # 0.2 x 2 / 4
    # a role busier idle than under load counts 0, not a negative
    assert roles["raylet"] == {"cores": 0.0, "idle_cores": 0.05, "net_ms_per_good": 0.0}
    assert lv["server_cpu"]["net_ms_per_good"] == pytest.approx(200.0)
    assert lv["server_cpu"]["ms_per_good"] == pytest.approx(250.0)  # 1 CPU s / 4


def test_cpu_by_role_without_goodput_has_no_per_answer_cost() -> None:
    out = cpu_by_role({"ranking": 1.0}, 2.0, 0)
    assert out == {"ranking": {"cores": 0.5, "idle_cores": 0.0, "net_ms_per_good": None}}


def test_summarize_level_reads_old_four_field_samples() -> None:
    lv = summarize_level(_raw(1, [[5.0, 200, 1, ""], [6.0, 200, 0, ""]]))
    assert (lv["good"], lv["degraded"], lv["fallbacks"], lv["cold_start"]) == (1, 1, {}, 0)


def test_summarize_level_without_successes_has_no_latency() -> None:
    lv = summarize_level(_raw(1, [[5.0, 503, 0, ""]]))
    assert lv["latency_ms"] is None
    assert lv["rps"] == 0.0 and lv["goodput"] == 0.0
    assert lv["error_rate"] == 1.0
    assert lv["server_cpu"]["ms_per_good"] is None


def test_goodput_is_derived_for_old_reports() -> None:
    assert goodput_of({"rps": 10.0, "degraded": 4, "window_s": 2.0}) == pytest.approx(8.0)
    assert goodput_of({"rps": 10.0, "goodput": 3.0}) == 3.0
    assert goodput_of(None) is None


def _level(
    concurrency: int,
    p50: float,
    p99: float,
    goodput: float,
    *,
    rps: float | None = None,
    errors: int = 0,
    cpu: float | None = 5.0,
    share: float = 0.0,
) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "rps": goodput if rps is None else rps,
        "goodput": goodput,
        "degraded_share": share,
        "ok": 10,
        "errors": errors,
        "degraded": 0,
        "latency_ms": {"p50_ms": p50, "p95_ms": p99, "p99_ms": p99},
        "server_ms": {"p50_ms": p50 - 1},
        "overhead_ms": {"p50_ms": 1.0, "mean_ms": 1.0},
        "stages": {"features": {"p50_ms": 1.0, "mean_ms": 1.0, "n": 10}},
        "server_cpu": {"ms_per_request": cpu, "net_ms_per_good": cpu},
    }


def test_ratios_and_targets_are_judged_on_goodput() -> None:
    # Serve at c=16: 300 RPS but only 100 of them full answers
    serve = [
        _level(1, 12.0, 20.0, 80.0, cpu=13.0),
        _level(4, 30.0, 50.0, 90.0, share=0.005),
        _level(16, 60.0, 90.0, 100.0, rps=300.0),
    ]
    mono = [_level(1, 10.0, 12.0, 120.0, cpu=10.0), _level(16, 50.0, 70.0, 110.0)]
    wide = [_level(16, 40.0, 60.0, 200.0)]
    r1, r16 = ratios(serve, mono, wide)  # where Serve and the 1-worker monolith both ran
    assert r1["p50_serve_over_monolith"] == pytest.approx(1.2)
    assert r1["cpu_serve_over_monolith"] == pytest.approx(1.3)
    assert r16["rps_serve_over_monolith"] == pytest.approx(300 / 110)
    assert r16["goodput_serve_over_monolith"] == pytest.approx(100 / 110)
    assert r16["goodput_serve_over_monolith_n"] == pytest.approx(0.5)
    targets = check_targets(serve, mono, wide)
    assert set(targets) == set(TARGETS)
    assert targets["p50_ratio_at_c1"] == targets["p50_ratio_at_c1"] | {"met": True, "max": 1.5}
    assert targets["cpu_ratio_at_c1"]["met"] is True  # 1.3 is within "<= 1.3x"
    assert targets["goodput_ratio_n_at_c16"]["value"] == pytest.approx(0.5)
    assert targets["goodput_ratio_n_at_c16"]["met"] is False
    assert targets["goodput_ratio_1_at_c16"]["met"] is False  # 0.91, though RPS is 2.7x
    assert targets["degraded_share_at_c4"]["met"] is True
    assert targets["serve_goodput_at_c16"]["met"] is False  # 100 < 150, though 300 RPS
    assert targets["serve_errors_at_c16"]["met"] is True
    assert {t["issue"] for t in targets.values()} == {6, 12}


def test_targets_not_measured_are_none() -> None:
    targets = check_targets([_level(2, 10.0, 20.0, 50.0)], [])
    assert all(t["met"] is None and t["value"] is None for t in targets.values())
