"""Bounded label vocabularies: raw stage names, fallback reasons and genres map onto them."""

from __future__ import annotations

import pytest

from deployments.common import StageUnavailableError, public_reason
from deployments.observability.labels import (
    OTHER,
    REASONS,
    STAGES,
    genre_vocabulary,
    reason_label,
    source_label,
    stage_label,
)


@pytest.mark.parametrize(
    ("exc", "label"),
    [
        (TimeoutError(), "timeout"),
        (StageUnavailableError("ranker unavailable: no file /x/y"), "unavailable"),
        (ValueError("boom"), "error"),
        (KeyError("user"), "error"),
    ],
)
def test_public_reasons_map_to_their_category(exc: BaseException, label: str) -> None:
    assert reason_label(public_reason(exc)) == label


@pytest.mark.parametrize(
    ("reason", "label"),
    [
        ("timeout after 0.5 s", "timeout"),
        ("skipped: no seeds without the user's features", "skipped"),
        ("skipped: no candidate features; merged-score order", "skipped"),
        ("wrong number of scores; merged-score order", "bad_output"),
        ("something nobody planned", OTHER),
        ("", OTHER),
    ],
)
def test_controller_reasons_map_to_a_bounded_category(reason: str, label: str) -> None:
    assert reason_label(reason) == label
    assert label in REASONS


def test_stage_names_map_onto_the_stage_vocabulary() -> None:
    assert stage_label("content") == "content"
    for stage in ("retrieval", "content", "features", "ranking", "rules", "total"):
        assert stage_label(stage) == stage
    assert stage_label("user 42") == OTHER
    assert {stage_label(s) for s in ("a", "b", "content", "total")} <= set(STAGES)


def test_sources_outside_the_vocabulary_are_other() -> None:
    assert [source_label(s) for s in ("retrieval", "content", "popular")] == [
        "retrieval",
        "content",
        "popular",
    ]
    assert source_label("a new source") == OTHER


def test_genre_vocabulary_is_capped() -> None:
    genres = [f"g{i:02d}" for i in range(50)]
    assert genre_vocabulary(genres, limit=10) == frozenset(genres[:10])
    assert genre_vocabulary(["Drama", "Drama", "War"]) == {"Drama", "War"}
