"""The README's scale tables and the plot are rendered from the committed scale.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.common import readme_block
from benchmarks.scalebench.report import README_BEGIN, README_END, plot, render_markdown

ROOT = Path(__file__).resolve().parents[3]
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"


@pytest.fixture(scope="module")
def payload() -> dict:
    return json.loads(RESULTS.read_text())


def test_readme_tables_match_the_committed_json(payload: dict) -> None:
    block = readme_block(ROOT / "README.md", README_BEGIN, README_END)
    assert block == render_markdown(payload).strip("\n"), (
        "README scale tables are stale: run `python -m benchmarks.scale --render-only "
        "--readme README.md`"
    )


def test_every_measured_row_is_in_the_table(payload: dict) -> None:
    table = render_markdown(payload)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    retrieval = sum(len(entry["methods"]) for entry in payload["results"])
    assert len(rows) == 2 + retrieval + len(payload["feast"])  # two header rows
    for entry in payload["results"]:
        for name, result in entry["methods"].items():
            if "skipped" not in result:
                assert f"{result['recall_at_k']:.3f}" in table, (entry["size"], name)


def test_plot_writes_a_png(tmp_path: Path, payload: dict) -> None:
    path = plot(payload, tmp_path / "scale.png")
    assert path.read_bytes().startswith(b"\x89PNG")
