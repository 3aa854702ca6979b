"""The candidate study's pure parts: the paired bootstrap, the choice rule, the record in
tuning.json, and the tuning record's default checks once counts are chosen there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.evaluation import candidate_study as cs
from models.evaluation.tuning import defaults_are_chosen, tuning_record
from models.ranking.config import CandidateConfig


def _figures(length: float, delta: float, se: float) -> dict[str, Any]:
    return {"mean_list_length": length, "vs_reference": {"delta": delta, "se": se}}


def test_paired_delta_is_the_mean_difference_with_a_bootstrap_error() -> None:
    base = {u: 0.5 for u in range(100)}
    same = cs.paired_delta(base, dict(base))
    assert same == {"delta": 0.0, "se": 0.0}
    shifted = cs.paired_delta(base, {u: 0.5 + (0.02 if u % 2 else 0.0) for u in range(100)})
    assert shifted["delta"] == pytest.approx(0.01)
    assert 0.0 < shifted["se"] < 0.01


def test_the_choice_is_the_shortest_retrained_list_within_the_noise() -> None:
    record = {
        "served": {cs.REFERENCE: _figures(200.0, 0.0, 0.0)},
        "retrained": {
            cs.SEED_OPTION: _figures(200.0, -0.003, 0.002),
            "max_ranked 150": _figures(150.0, -0.002, 0.001),  # within the seed spread
            "max_ranked 100": _figures(100.0, -0.010, 0.002),  # a real loss
        },
    }
    name, bound = cs.choose(record)
    assert name == "max_ranked 150" and bound == pytest.approx(0.003)  # max(2 x se, spread)
    record["retrained"]["max_ranked 150"] = _figures(150.0, -0.005, 0.001)
    name, bound = cs.choose(record)
    assert name == cs.REFERENCE and bound == pytest.approx(0.003)


def test_defaults_are_checked_against_the_chosen_counts() -> None:
    default = CandidateConfig()
    matching = [
        name
        for name, changes in cs.options().items()
        if all(getattr(default, k) == v for k, v in {**cs.WIDE, **changes}.items())
    ]
    assert len(matching) == 1
    assert cs.defaults_are_chosen(matching[0]) is True
    assert cs.defaults_are_chosen("no such option") is None
    others = [name for name in cs.options() if name != matching[0]]
    assert not any(cs.defaults_are_chosen(name) for name in others)


def test_the_study_updates_only_its_part_of_tuning_json(tmp_path: Path) -> None:
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps({"variant": "ml-100k", "studies": {"ranker": {"chosen": "x"}}}))
    cs.save_study(tmp_path, "ml-100k", {"chosen": cs.REFERENCE})
    studies = json.loads(path.read_text())["studies"]
    assert studies["ranker"] == {"chosen": "x"}
    assert studies["candidates"] == {"chosen": cs.REFERENCE}
    record = tuning_record(tmp_path, "ml-100k")
    assert record["studies"]["candidates"]["default_is_chosen"] == cs.defaults_are_chosen(
        cs.REFERENCE
    )


def test_the_ranker_study_leaves_the_counts_to_the_candidates_study() -> None:
    chosen = "union of 3 sources (itemcf 100) + user/genre features"
    with_counts = {"studies": {"candidates": {"chosen": cs.REFERENCE}}}
    # the ranker study's option differs from the defaults at most in its counts
    assert defaults_are_chosen("ranker", chosen, with_counts) is True
