"""The README's generated performance tables match the committed results (pure: no services).

Regenerate them with `python -m benchmarks.load --render-only` and
`python -m benchmarks.served_quality --render-only` (and `python -m benchmarks.events
--render-only`, `python -m benchmarks.replay --render-only`, `python -m benchmarks.hop
--render-only`) after a new run.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import (
    events,
    events_report,
    hop,
    hop_report,
    load_render,
    replay,
    replay_report,
    served_quality,
)
from benchmarks.common import readme_block

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def test_load_tables_match_load_json() -> None:
    report = json.loads((RESULTS / "load.json").read_text())
    block = readme_block(ROOT / "README.md", load_render.README_BEGIN, load_render.README_END)
    assert block == load_render.markdown_tables(report).rstrip()


def test_served_quality_table_matches_its_json() -> None:
    report = json.loads((RESULTS / served_quality.SERVED_QUALITY_JSON).read_text())
    block = readme_block(ROOT / "README.md", served_quality.README_BEGIN, served_quality.README_END)
    assert block == served_quality.markdown_table(report).rstrip()


def test_event_ingestion_table_matches_its_json() -> None:
    report = json.loads((RESULTS / events.EVENTS_JSON).read_text())
    block = readme_block(ROOT / "README.md", events.README_BEGIN, events.README_END)
    assert block == events_report.markdown_table(report).rstrip()


def test_session_replay_table_matches_its_json() -> None:
    report = json.loads((RESULTS / replay.REPLAY_JSON).read_text())
    block = readme_block(ROOT / "README.md", replay.README_BEGIN, replay.README_END)
    assert block == replay_report.markdown_table(report).rstrip()


def test_hop_table_matches_its_json() -> None:
    report = json.loads((RESULTS / hop.HOP_JSON).read_text())
    block = readme_block(ROOT / "README.md", hop_report.README_BEGIN, hop_report.README_END)
    assert block == hop_report.markdown_table(report).rstrip()
