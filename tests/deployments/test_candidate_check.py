"""The Controller's candidate settings against the ranker's training settings."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from deployments.candidate_check import candidate_mismatch, check_candidates, trained_candidates
from deployments.config import ControllerConfig

TRAINED = {
    "retrieval_n": 200,
    "content_n": 50,
    "itemcf_n": 100,
    "retrieval_weight": 1.0,
    "content_weight": 1.0,
    "itemcf_weight": 1.0,
    "max_ranked": 350,
}


def _config(**candidates: int) -> ControllerConfig:
    counts = {"retrieval": 200, "content": 50, "itemcf": 100, "max_ranked": 350, **candidates}
    return ControllerConfig.model_validate({"candidates": counts})


def test_equal_settings_match() -> None:
    assert candidate_mismatch(_config(), TRAINED) == []


def test_each_differing_count_is_named() -> None:
    problems = candidate_mismatch(_config(itemcf=0, max_ranked=100), TRAINED)
    assert problems == [
        "candidates.itemcf=0, ranker trained with 100",
        "candidates.max_ranked=100, ranker trained with 350",
    ]


def test_weights_matter_only_when_max_ranked_cuts_the_union() -> None:
    weights = {"retrieval": 1.0, "content": 0.5, "itemcf": 1.0, "popular": 0.25}
    whole = ControllerConfig.model_validate(
        {"candidates": {"itemcf": 100, "max_ranked": 350}, "weights": weights}
    )
    assert candidate_mismatch(whole, TRAINED) == []
    cut = {**TRAINED, "max_ranked": 100}
    config = ControllerConfig.model_validate(
        {"candidates": {"itemcf": 100, "max_ranked": 100}, "weights": weights}
    )
    assert candidate_mismatch(config, cut) == ["weights.content=0.5, ranker trained with 1.0"]


def test_check_reads_ranker_json_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "ranker.json").write_text(json.dumps({"config": {"candidates": TRAINED}}))
    assert trained_candidates(tmp_path) == TRAINED
    with caplog.at_level(logging.WARNING, logger="deployments.candidate_check"):
        assert check_candidates(_config(), tmp_path) == []
        assert not caplog.records
        problems = check_candidates(_config(content=10), tmp_path)
    assert problems == ["candidates.content=10, ranker trained with 50"]
    assert "candidates.content=10" in caplog.text
    assert check_candidates(_config(), tmp_path / "missing") == [
        f"no candidate settings in {tmp_path / 'missing' / 'ranker.json'}"
    ]
