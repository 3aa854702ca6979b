"""The whole offline chain on a small slice of ml-100k, with real TF, Feast and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from models.content.index import resolve_alias
from models.data import MovieLens
from models.features import OnlineFeatures
from models.pipeline.build import BuildOptions, build
from models.pipeline.load import content_index_config, load_all
from movierec.layout import ArtifactLayout
from movierec.manifest import Manifest
from movierec.settings import get_settings

pytestmark = [pytest.mark.slow, pytest.mark.integration]
PROJECT_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def redis_env(embedded_redis_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", embedded_redis_url)
    get_settings.cache_clear()
    yield embedded_redis_url
    get_settings.cache_clear()


def test_build_load_and_rebuild_skips_unchanged_steps(
    tmp_path: Path, small_movielens: MovieLens, redis_env: str
) -> None:
    options = BuildOptions(
        "ml-100k", "eval", tmp_path, retrieval={"epochs": 1}, ranking={"epochs": 1}
    )
    statuses: list[tuple[str, str]] = []
    manifest = build(options, small_movielens, on_step=lambda n, s: statuses.append((n, s)))
    assert all(status == "built" for _, status in statuses)
    layout = ArtifactLayout.of(tmp_path, "ml-100k", "eval")
    assert (layout.retrieval_dir / "saved_model").is_dir()
    assert (layout.catalog_dir / "popularity.parquet").is_file()
    assert (layout.content_dir / "content_embeddings.parquet").is_file()
    assert (layout.ranking_dir / "saved_model").is_dir()
    assert (layout.ranking_dir / "inputs.json").is_file()
    train_rows = manifest.steps["splits"].metrics["train_rows"]
    test_rows = manifest.steps["splits"].metrics["test_rows"]
    assert train_rows + test_rows == len(small_movielens.ratings)

    assert load_all(layout, manifest) == {"content_index": "loaded", "features": "loaded"}
    client = redis.Redis.from_url(redis_env)
    assert resolve_alias(client, content_index_config(layout).alias) is not None
    online = OnlineFeatures.open(
        redis_env, layout.features_dir / "registry.db", project=layout.feast_project
    )
    some_user = int(small_movielens.ratings["user_id"].iloc[0])
    history = online.get_user_history(some_user)
    assert history["seen_movie_ids"], "the user's training history must be online"

    statuses.clear()
    again = build(options, small_movielens, on_step=lambda n, s: statuses.append((n, s)))
    assert {status for _, status in statuses} == {"skipped"}
    assert again.data_hash == manifest.data_hash
    assert load_all(layout, again) == {"content_index": "unchanged", "features": "unchanged"}


def test_corrupt_ratings_fail_clearly_and_keep_previous_artifacts(
    tmp_path: Path, redis_env: str
) -> None:
    live = tmp_path / "artifacts" / "ml-100k" / "eval"
    live.parent.mkdir(parents=True)
    previous = tmp_path / "artifacts" / "ml-100k" / "eval.build-previous"
    previous.mkdir()
    Manifest("ml-100k", "eval", data_hash="old").save(previous)
    live.symlink_to(previous.name)
    raw = tmp_path / "raw"
    raw.mkdir()
    fixtures = PROJECT_ROOT / "tests" / "models" / "data" / "fixtures" / "classic"
    for item in fixtures.iterdir():
        (raw / item.name).write_bytes(item.read_bytes())
    (raw / "u.data").write_text("1\t2\tfive\t881250949\n")
    env = {
        **os.environ,
        "MOVIEREC_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
        "MOVIEREC_DATA_DIR": str(tmp_path / "data"),
        "MOVIEREC_DATASET_DIR": str(raw),
    }
    done = subprocess.run(
        [sys.executable, "-m", "models.pipeline", "--variant", "ml-100k"],
        env=env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    assert done.returncode == 2
    assert "u.data" in done.stderr
    assert "Traceback" not in done.stderr
    assert os.readlink(live) == previous.name
    loaded = Manifest.load(live)
    assert loaded is not None and loaded.data_hash == "old"
