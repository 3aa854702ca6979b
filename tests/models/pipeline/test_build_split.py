"""An eval build on a benchmark's own split (`PresetSplit`): the splits step writes the given
tables, the same split again skips the steps, a changed one rebuilds them, and a full build
refuses it. Runs the real build's splits and catalog steps on a slice of ml-100k."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.data import MovieLens, temporal_share_split
from models.pipeline.build import BuildOptions, PresetSplit, steps_for
from models.pipeline.runner import PipelineError
from movierec.layout import ArtifactLayout
from tests.models.pipeline.test_build_events import _run


def test_an_eval_build_on_a_preset_split_writes_it_and_caches_by_its_content(
    tmp_path: Path, small_movielens: MovieLens
) -> None:
    ratings = small_movielens.ratings
    train, test = temporal_share_split(ratings, test_share=0.2, min_test=2)
    preset = PresetSplit("temporal 20 %", train, test)
    options = BuildOptions("ml-100k", "eval", tmp_path / "replay", split=preset)

    manifest, built_train, statuses = _run(options, small_movielens)
    assert statuses == ["built", "built"]
    layout = ArtifactLayout.of(tmp_path / "replay", "ml-100k", "eval")
    built_test = pd.read_parquet(layout.splits_dir / "test.parquet")
    assert len(built_train) == len(train) and len(built_test) == len(test)
    assert set(zip(built_test["user_id"], built_test["movie_id"], strict=True)) == set(
        zip(test["user_id"], test["movie_id"], strict=True)
    )
    # the cold-start list is the popularity of the preset's train part
    popular = pd.read_parquet(layout.catalog_dir / "popularity.parquet")
    assert set(popular["movie_id"]) == set(train["movie_id"])

    _, _, statuses = _run(options, small_movielens)
    assert statuses == ["skipped", "skipped"]  # the same split: nothing rebuilt

    other = PresetSplit("temporal 20 %", train.iloc[1:], pd.concat([test, train.iloc[:1]]))
    changed, _, statuses = _run(
        BuildOptions("ml-100k", "eval", tmp_path / "replay", split=other), small_movielens
    )
    assert statuses == ["built", "built"]
    assert changed.steps["splits"].fingerprint != manifest.steps["splits"].fingerprint
    assert changed.steps["splits"].fingerprint != _stratified_print(tmp_path, small_movielens)


def _stratified_print(tmp_path: Path, dataset: MovieLens) -> str:
    manifest, _, _ = _run(BuildOptions("ml-100k", "eval", tmp_path / "plain"), dataset)
    return manifest.steps["splits"].fingerprint


def test_a_full_build_refuses_a_preset_split(tmp_path: Path, small_movielens: MovieLens) -> None:
    ratings = small_movielens.ratings
    preset = PresetSplit("x", ratings, ratings.iloc[:0])
    options = BuildOptions("ml-100k", "full", tmp_path / "a", split=preset)
    layout = ArtifactLayout.of(tmp_path / "a", "ml-100k", "full")
    with pytest.raises(PipelineError, match="eval builds only"):
        steps_for(layout, options)
