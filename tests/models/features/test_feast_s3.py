"""The Feast offline store on S3: sources in the (local, real) object store give the same
point-in-time training set and the same materialized online values as sources on disk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.features import (
    OnlineFeatures,
    apply_definitions,
    build_feature_tables,
    get_training_features,
    materialize,
    open_store,
    write_sources,
)
from movierec.storage import ObjectStore
from tests.models.features import _tiny
from tests.models.features._tiny import DAY, S1, S2, B

pytestmark = pytest.mark.integration


def _entity_df() -> pd.DataFrame:
    between = B + 8 * DAY
    return pd.DataFrame(
        {
            "user_id": [1, 1, 1, 1, 1, 2, 1],
            "movie_id": [1, 2, 1, 1, 1, 4, 3],
            "timestamp": [between, between, S1, S1 - 1, S2 + DAY, B + 2 * DAY, B],
            "label": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )


def test_offline_store_on_s3_matches_disk(
    s3_env: dict[str, str], redis_url: str, built: Path, tmp_path: Path
) -> None:
    tables = build_feature_tables(_tiny.ratings(), _tiny.movies(), _tiny.users(), _tiny.CONFIG)
    local = tmp_path / "features"
    write_sources(tables, local)
    store = ObjectStore(s3_env["MOVIEREC_STORAGE_URI"])
    store.upload(tmp_path, "tiny", "eval", "b1")
    remote = store.build_uri("tiny", "eval", "b1") + "/features"
    url = redis_url.rsplit("/", 1)[0] + "/2"  # own db: the other tests read db 0
    registry = tmp_path / "registry.db"

    on_s3 = open_store(url, remote, registry, project="movierec_s3")
    objects = apply_definitions(on_s3, remote)
    paths = {o.path for o in objects if hasattr(o, "path")}
    assert paths and all(p.startswith(remote + "/") for p in paths)

    from_s3 = get_training_features(on_s3, _entity_df())
    from_disk = get_training_features(open_store(redis_url, built), _entity_df())
    pd.testing.assert_frame_equal(from_s3, from_disk)

    materialize(on_s3, *tables.time_range())  # reads the offline store on S3
    s3_reader = OnlineFeatures.open(url, registry, "movierec_s3")
    disk_reader = OnlineFeatures.open(redis_url, built / "registry.db")
    for user in (1, 2, 3):
        assert s3_reader.get_user_features(user) == disk_reader.get_user_features(user)
        assert s3_reader.get_user_history(user) == disk_reader.get_user_history(user)
    assert s3_reader.get_movie_features([1, 2, 3, 4]) == disk_reader.get_movie_features(
        [1, 2, 3, 4]
    )
