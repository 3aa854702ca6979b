"""Unit tests of the load benchmark's README tables and plot (pure: no services)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.load_render import cpu_columns, markdown_tables, plot, system_label
from benchmarks.load_report import check_targets, ratios


def _level(concurrency: int, p50: float, goodput: float, rps: float) -> dict[str, Any]:
    return {
        "concurrency": concurrency,
        "rps": rps,
        "goodput": goodput,
        "degraded_share": 1.0 - goodput / rps,
        "ok": 10,
        "errors": 0,
        "degraded": 0,
        "fallbacks": {"content": {"timeout": 3}} if goodput < rps else {},
        "latency_ms": {"p50_ms": p50, "p95_ms": 2 * p50, "p99_ms": 3 * p50},
        "server_ms": {"p50_ms": p50 - 1},
        "overhead_ms": {"p50_ms": 1.0, "mean_ms": 1.0},
        "stages": {"features": {"p50_ms": 1.0, "mean_ms": 1.0, "n": 10}},
        "server_cpu": {
            "net_ms_per_good": 7.0,
            "ms_per_good": 8.0,
            "by_role": {
                "controller": {"cores": 0.4, "idle_cores": 0.1, "net_ms_per_good": 4.0},
                "raylet": {"cores": 0.2, "idle_cores": 0.2, "net_ms_per_good": 0.0},
                "redis": {"cores": 0.1, "idle_cores": 0.0, "net_ms_per_good": 3.0},
            },
        },
        "rss_bytes": {"total": 3 * 2**20, "by_role": {}},
    }


def _report() -> dict[str, Any]:
    serve = [_level(1, 12.0, 80.0, 80.0), _level(16, 60.0, 100.0, 200.0)]
    for lv in serve:
        lv["replicas"] = {"Controller": 1, "Retrieval": 2, "Features": 1, "Content": 1}
        lv["replicas"]["Ranking"] = 1
    mono = [_level(1, 8.0, 120.0, 120.0), _level(16, 50.0, 200.0, 300.0)]
    wide = [_level(1, 8.0, 120.0, 120.0), _level(16, 40.0, 250.0, 250.0)]
    probe = {"rate": 100.0, "passed": True, "goodput": 99.0, "p99_ms": 80.0}
    capacity = {
        "capacity_rps": 100.0,
        "lowest_failing_rps": 110.0,
        "stopped_by": "tolerance",
        "probes": [probe, {"rate": 110.0, "passed": False}],
        "criteria": {"max_bad_share": 0.01, "p99_budget_ms": 150.0},
    }
    return {
        "setup": {"monolith_workers": 2, "idle_s": 10.0},
        "systems": {
            "serve": {"levels": serve},
            "monolith": {"levels": mono},
            "monolith_n": {"levels": wide},
        },
        "capacity": {"serve": capacity},
        "ratios": ratios(serve, mono, wide),
        "floor": {"recommend": {"p50_ms": 5.0, "p99_ms": 9.0}, "stage_calls": {}},
        "targets": check_targets(serve, mono, wide),
    }


def test_labels_name_the_workers() -> None:
    report = _report()
    assert [system_label(n, report) for n in ("serve", "monolith", "monolith_n")] == [
        "Serve",
        "monolith x1",
        "monolith x2",
    ]


def test_markdown_shows_goodput_cpu_by_role_capacity_and_targets() -> None:
    text = markdown_tables(_report())
    # goodput first, RPS beside it, degraded or failed share, net CPU, RSS, replicas
    row = "| Serve | 16 | 100 | 200 | 50.0% | 60.0 | 120.0 | 180.0 | 0 | 7.0 | 3 | 1/2/1/1/1 |"
    assert row in text
    assert "| monolith x2 | 16 | 250 | 250 | 0.0% |" in text
    assert "| Serve | 16 | content/timeout: 3 |" in text  # fallbacks of degraded answers
    assert "| 16 | 1.20 | 0.50 | 0.40 | 1.00 |" in text  # p50, goodput x1, goodput xN, CPU
    assert "| stage `features` | 1.00 | 1.00 |" in text
    assert "| Controller replica(s) | 4.00 | 4.00 |" in text
    assert "| idle share subtracted (cores, no traffic) | 0.30 |" in text
    assert "| Serve | 100 | 99 | 80.0 | 110 | 2 | tolerance |" in text
    assert "**no**" in text  # a missed target is shown, not hidden
    assert "Idle CPU measured over 10.0 s" in text


def test_cpu_columns_take_c1_and_c16_of_each_system() -> None:
    titles = [title for title, _ in cpu_columns(_report())]
    assert titles == [
        "Serve c=1",
        "Serve c=16",
        "monolith x1 c=1",
        "monolith x1 c=16",
        "monolith x2 c=1",
        "monolith x2 c=16",
    ]


def test_old_reports_render_with_derived_goodput() -> None:
    old = {
        "concurrency": 16,
        "rps": 100.0,
        "window_s": 20.0,
        "requests": 2000,
        "ok": 2000,
        "errors": 0,
        "degraded": 1000,
        "latency_ms": {"p50_ms": 10.0, "p95_ms": 20.0, "p99_ms": 30.0},
        "stages": {},
        "server_cpu": {"ms_per_request": 5.0},
    }
    text = markdown_tables({"systems": {"serve": {"levels": [old]}}})
    assert "| Serve | 16 | 50 | 100 | 50.0% | 10.0 | 20.0 | 30.0 | 0 | - | - | - |" in text
    assert "CPU ms per goodput answer, net of idle |" not in text  # no CPU by role recorded


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = plot(_report(), tmp_path / "load.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
