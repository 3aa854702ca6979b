"""The plain Feast CLI on feature_repo/: `feast apply` and `feast materialize-incremental`."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from models.features import FEATURE_REPO_DIR, OnlineFeatures, build_feature_tables, write_sources
from tests.models.features import _tiny
from tests.models.features._tiny import S2

pytestmark = pytest.mark.integration

FEAST = str(Path(sys.executable).with_name("feast"))


def _run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_feast_cli_apply_and_materialize_incremental(redis_url: str, tmp_path: Path):
    data_dir = tmp_path / "features"
    tables = build_feature_tables(_tiny.ratings(), _tiny.movies(), _tiny.users(), _tiny.CONFIG)
    write_sources(tables, data_dir)

    # the documented way to get the environment: eval "$(python -m models.features env ...)"
    exports = _run(
        [sys.executable, "-m", "models.features", "env", "--redis-url", redis_url,
         "--data-dir", str(data_dir)],
        env=dict(os.environ), cwd=tmp_path,
    )  # fmt: skip
    env = dict(os.environ)
    for line in exports.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    assert env["MOVIEREC_FEAST_DATA_DIR"] == str(data_dir.resolve())

    _run([FEAST, "apply"], env, FEATURE_REPO_DIR)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _run([FEAST, "materialize-incremental", now], env, FEATURE_REPO_DIR)

    reader = OnlineFeatures.open(redis_url, env["MOVIEREC_FEAST_REGISTRY"])
    services = {s.name for s in reader.store.list_feature_services()}
    assert {"ranker_v1", "ranker_movie_v1", "controller_v1"} <= services
    count, mean, _, liked, seen = _tiny.USER_AT[1][S2]
    user = reader.get_user_features(1)
    assert user["user_rating_count"] == count
    assert user["user_rating_mean"] == pytest.approx(mean)
    assert user["user_age"] == 24
    assert reader.get_user_history(1) == {"liked_movie_ids": liked, "seen_movie_ids": seen}
    movies = reader.get_movie_features([1, 5])
    assert movies["movie_rating_count"] == [3, 0]
    assert movies["movie_genres"] == [["Action", "Comedy"], ["Horror"]]
    # the CLI's materialization also refreshed the precomputed movie vectors
    precomputed = reader.store.get_online_features(
        reader.store.get_feature_service("ranker_movie_v1"),
        {"movie_id": [1, 5]},
        full_feature_names=True,
    ).to_dict()
    assert precomputed["movie_features__movie_rating_count"] == [3, 0]
