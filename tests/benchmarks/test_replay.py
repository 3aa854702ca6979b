"""`benchmarks.replay`: the config it serves (pure), its refusal of a shared Redis, and a smoke
run of the replay over HTTP against the real app (in process) on the tiny artifacts: every arm
answered, the events applied, the posted movies gone, new users no longer a cold start. No
quality threshold is asserted (that is `make bench-replay`'s table)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from benchmarks.replay import (
    QUALITY_TIMEOUTS,
    REPLAY_TREE,
    ReplayError,
    ReplayOptions,
    quality_timeouts,
    replay,
    run,
    served_config,
)
from benchmarks.replay_protocol import ReplaySplit, score, sessions
from benchmarks.replay_report import markdown_table
from benchmarks.stack import ServeConfig
from tests.benchmarks.conftest import app_args
from tests.deployments._artifacts import TinyArtifacts


def test_the_served_config_points_at_the_replay_tree_with_relaxed_deadlines(
    tmp_path: Path,
) -> None:
    options = ReplayOptions(artifacts_dir=tmp_path / "artifacts")
    config = served_config(options, tmp_path / "run")
    args = config.args
    assert args["artifacts_dir"] == str((tmp_path / "artifacts" / REPLAY_TREE).resolve())
    assert (args["mode"], args["run_dir"], args["storage_uri"]) == (
        "eval",
        str(tmp_path / "run"),
        "",
    )
    timeouts = config.user_config("Controller")["timeouts"]
    assert {key: timeouts[key] for key in QUALITY_TIMEOUTS} == QUALITY_TIMEOUTS
    assert (
        timeouts["reserve"] == ServeConfig.load().user_config("Controller")["timeouts"]["reserve"]
    )
    production = served_config(replace(options, production_timeouts=True), tmp_path / "run")
    assert production.user_config("Controller") == ServeConfig.load().user_config("Controller")


def test_a_configured_redis_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    with pytest.raises(ReplayError, match="REDIS_URL is set"):
        run(ReplayOptions())


@pytest.mark.integration
def test_the_replay_answers_every_arm_over_http(tiny: tuple[Path, TinyArtifacts]) -> None:
    from models.data import load_dataset

    run_dir, artifacts = tiny
    test = pd.read_parquet(artifacts.layout.splits_dir / "test.parquet")
    known = sessions(test[test["user_id"].isin([1, 2, 3])])
    # users above the tiny slice's 200 are unknown to its build: new users
    ratings = load_dataset("ml-100k").ratings
    unknown = ratings[ratings["user_id"].between(201, 206) & (ratings["movie_id"] <= 500)]
    split = ReplaySplit(artifacts.train, test, tuple(known), tuple(sessions(unknown)), {})
    config = quality_timeouts(ServeConfig.load().with_overrides(args=app_args(run_dir, artifacts)))
    from benchmarks.stack import serve_in_process

    with serve_in_process(config) as url:
        result = replay(url, split, 10, 4.0, retries=3, wait_timeout_s=120.0, cleanup=True)
    answers = result["answers"]
    assert result["wait"]["applied"], result["wait"]
    assert result["events"]["accepted"] == result["events"]["events"] > 0
    assert set(answers["a"]) == set(answers["b"]) == {1, 2, 3}
    new = {s.user_id: s for s in split.new if s.likes(4.0)}
    assert new and set(answers["c"]) == set(answers["d"]) == set(new)
    assert all(a.cold_start for a in answers["c"].values())
    assert not any(a.cold_start for a in answers["d"].values())
    for user, answer in answers["d"].items():
        assert not {r.movie_id for r in new[user].likes(4.0)} & set(answer.ids)
    report = score(result, split, 10, 4.0)
    assert report["arms"]["b"]["answers_holding_posted"] == 0
    assert report["arms"]["d"]["answers_holding_posted"] == 0
    for arm in ("a", "b", "c", "d"):
        assert report["arms"][arm]["requests"] > 0
        assert 0.0 <= report["arms"][arm]["ndcg@10"] <= 1.0
    assert set(report["deltas"]) == {"b-a", "d-c"}
    assert result["cleanup"]["failed"] == 0
    setup = {
        "k": 10,
        "split": {"test_share": 0.2, "min_test": 2, "new_users": len(split.new), "seed": 0},
        "events": result["events"],
        "applied_wait": result["wait"],
        "model_version": "tiny",
        "timeouts": QUALITY_TIMEOUTS,
        "elapsed_s": 1.0,
        "build": {"seconds": 0.0},
        "replay_s": result["seconds"],
    }
    assert "(d) new users" in markdown_table({"setup": setup, **report})
