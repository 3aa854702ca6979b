"""`make artifacts` with MOVIEREC_STORAGE_URI=s3://...: the real pipeline on a small slice of
ml-100k, published to the local S3 server, Feast materialized from the store's parquet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from models.data import MovieLens
from models.features import OnlineFeatures, get_training_features, open_store
from models.pipeline.build import BuildOptions, build
from models.pipeline.publish import build_id_of, publish_build
from movierec.layout import ArtifactLayout
from movierec.settings import get_settings
from movierec.storage import ArtifactSource, ObjectStore

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def redis_env(embedded_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("REDIS_URL", embedded_redis_url)
    get_settings.cache_clear()
    yield embedded_redis_url
    get_settings.cache_clear()


def test_build_published_to_s3_serves_features_from_the_store(
    tmp_path: Path, small_movielens: MovieLens, redis_env: str, s3_env: dict[str, str]
) -> None:
    options = BuildOptions(
        "ml-100k", "eval", tmp_path / "built", retrieval={"epochs": 1}, ranking={"epochs": 1}
    )
    manifest = build(options, small_movielens)
    layout = ArtifactLayout.of(options.artifacts_dir, "ml-100k", "eval")
    store = ObjectStore(s3_env["MOVIEREC_STORAGE_URI"])

    build_id, loaded = publish_build(layout, manifest, store)
    assert build_id == build_id_of(layout) and loaded["features"] == "loaded"
    assert store.current("ml-100k", "eval") == build_id

    # A new node: nothing but the URI (and the AWS chain).
    fetched = ArtifactSource(tmp_path / "node", "ml-100k", "eval", store.uri).layout()
    assert fetched.root.name == build_id
    registry = fetched.features_dir / "registry.db"
    prefix = store.build_uri("ml-100k", "eval", build_id) + "/features/"
    remote = open_store(redis_env, prefix, registry, project=fetched.feast_project)
    sources = {fv.batch_source.path for fv in remote.list_feature_views()}
    assert sources and all(path.startswith(prefix) for path in sources)

    # Point-in-time training rows read from S3 equal those read from the local parquet.
    entities = pd.read_parquet(layout.splits_dir / "train.parquet").head(300)
    local = open_store(redis_env, layout.features_dir, tmp_path / "local-registry.db")
    from models.features import apply_definitions

    apply_definitions(local, layout.features_dir)
    pd.testing.assert_frame_equal(
        get_training_features(remote, entities), get_training_features(local, entities)
    )

    # The online store, materialized from S3, answers through the fetched registry.
    online = OnlineFeatures.open(redis_env, registry, project=fetched.feast_project)
    user = int(entities["user_id"].iloc[0])
    assert online.get_user_history(user)["seen_movie_ids"]

    # A rebuild that changes nothing keeps the tree and its id: nothing is uploaded again.
    record = store.build_record("ml-100k", "eval", build_id)
    build(options, small_movielens)
    assert build_id_of(layout) == build_id
    again, reloaded = publish_build(layout, manifest, store)
    assert again == build_id and reloaded["features"] == "unchanged"
    assert store.builds("ml-100k", "eval") == [build_id]
    assert store.build_record("ml-100k", "eval", build_id) == record
