"""Unit tests of the shared benchmark helpers (pure logic, no services)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.common import (
    load_average,
    machine_info,
    percentiles,
    rss_bytes,
    time_calls,
    time_each,
    utc_now,
    write_json,
)


def test_percentiles_interpolate_like_numpy() -> None:
    samples = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.5]
    summary = percentiles(samples, quantiles=(50, 95, 99, 12.5))
    for q in (50, 95, 99, 12.5):
        assert summary[f"p{q:g}_ms"] == pytest.approx(np.percentile(samples, q))
    assert summary["n"] == 7
    assert summary["min_ms"] == 1.0
    assert summary["max_ms"] == 10.0
    assert summary["mean_ms"] == pytest.approx(np.mean(samples))


def test_percentiles_of_one_sample() -> None:
    assert percentiles([2.5]) == {
        "n": 1,
        "mean_ms": 2.5,
        "min_ms": 2.5,
        "max_ms": 2.5,
        "p50_ms": 2.5,
        "p95_ms": 2.5,
        "p99_ms": 2.5,
    }


@pytest.mark.parametrize(
    ("values", "quantiles", "message"),
    [
        ([], (50,), "empty"),
        ([1.0, math.nan], (50,), "finite"),
        ([1.0], (101,), r"\[0, 100\]"),
    ],
)
def test_percentiles_refuses_bad_input(
    values: list[float], quantiles: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        percentiles(values, quantiles)


def test_time_calls_runs_warmup_then_timed_calls() -> None:
    calls: list[int] = []
    samples = time_calls(lambda: calls.append(1), n=4, warmup=3)
    assert len(calls) == 7
    assert len(samples) == 4
    assert all(s >= 0 for s in samples)
    with pytest.raises(ValueError, match="n must be"):
        time_calls(lambda: None, n=0)


def test_machine_info_reports_cpus_and_versions() -> None:
    info = machine_info(packages=("numpy", "surely-not-an-installed-distribution"))
    assert info["cpu_count"] >= 1
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert info["versions"]["numpy"] == np.__version__
    assert info["versions"]["surely-not-an-installed-distribution"] is None
    assert info["python"].count(".") == 2
    assert len(load_average()) == 3
    assert utc_now().endswith("+00:00")


def test_write_json_converts_numpy_and_is_atomic(tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "out" / "r.json",
        {"a": np.float32(1.5), "b": np.arange(3), "c": np.int64(7), "p": Path("/x")},
    )
    assert json.loads(path.read_text()) == {"a": 1.5, "b": [0, 1, 2], "c": 7, "p": "/x"}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": math.nan})
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_json(tmp_path / "obj.json", {"x": object()})


def test_update_readme_block_replaces_only_between_the_markers(tmp_path: Path) -> None:
    from benchmarks.common import readme_block, update_readme_block

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- b -->\nold\n<!-- e -->\noutro\n")
    assert update_readme_block(readme, "<!-- b -->", "<!-- e -->", "| new |\n") is True
    assert readme.read_text() == "intro\n<!-- b -->\n| new |\n<!-- e -->\noutro\n"
    assert readme_block(readme, "<!-- b -->", "<!-- e -->") == "| new |"
    assert update_readme_block(readme, "<!-- b -->", "<!-- e -->", "| new |") is False
    with pytest.raises(ValueError, match="no"):
        update_readme_block(readme, "<!-- x -->", "<!-- e -->", "")


def test_machine_summary_names_cpus_memory_and_versions() -> None:
    from benchmarks.common import machine_summary

    line = machine_summary(
        {
            "cpu_count": 2,
            "cpu_model": "EPYC",
            "memory_bytes": 24 * 2**30,
            "python": "3.11.7",
            "versions": {"ray": "2.60.0"},
        }
    )
    assert line == "2 CPUs (EPYC), 24 GiB, Python 3.11.7, Ray 2.60.0"


def test_rss_grows_with_a_touched_allocation() -> None:
    before = rss_bytes()
    block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MiB, every page touched
    assert rss_bytes() - before > 32 * 1024 * 1024
    del block


def test_time_each_times_every_input_once_after_cycling_warmup() -> None:
    seen: list[int] = []
    samples = time_each(seen.append, [1, 2, 3], warmup=4)
    assert seen == [1, 2, 3, 1, 1, 2, 3]
    assert len(samples) == 3
    with pytest.raises(ValueError, match="no inputs"):
        time_each(seen.append, [])


def test_git_commit_of_this_checkout_and_outside_one(tmp_path: Path) -> None:
    from benchmarks.common import git_commit

    commit = git_commit()
    assert commit is not None and len(commit.removesuffix("-dirty")) == 40
    assert git_commit(tmp_path) is None
