"""Feast features for movierec: point-in-time snapshots, the feature repo's plumbing, reads.

Offline (pipeline):  build_feature_tables -> write_sources -> apply_definitions -> materialize
                     (or build_feature_store for all four), get_training_features for the ranker.
Online (serving):    OnlineFeatures.shared(redis_url, registry_path).
The definitions themselves live in feature_repo/ (movierec_repo.py, feature_store.yaml).
"""

import models.features.feast_import  # noqa: F401  (first: Feast without torch)
from models.features.genres import GENRES, canonical_genres
from models.features.runtime import OnlineFeatures, response_columns
from models.features.snapshots import (
    SCHEMAS,
    FeatureTables,
    SnapshotConfig,
    build_feature_tables,
    snapshot_times,
)
from models.features.store import (
    CONTROLLER_SERVICE,
    DASK_OFFLINE,
    DUCKDB_OFFLINE,
    FEATURE_REPO_DIR,
    RANKER_MOVIE_SERVICE,
    RANKER_SERVICE,
    BuildReport,
    apply_definitions,
    build_feature_store,
    feast_env,
    feature_refs,
    get_training_features,
    load_definitions,
    load_repo_config,
    materialize,
    open_store,
    redis_url_to_feast,
    write_sources,
)

__all__ = [
    "CONTROLLER_SERVICE",
    "DASK_OFFLINE",
    "DUCKDB_OFFLINE",
    "FEATURE_REPO_DIR",
    "GENRES",
    "RANKER_MOVIE_SERVICE",
    "RANKER_SERVICE",
    "SCHEMAS",
    "BuildReport",
    "FeatureTables",
    "OnlineFeatures",
    "SnapshotConfig",
    "apply_definitions",
    "build_feature_store",
    "build_feature_tables",
    "canonical_genres",
    "feast_env",
    "feature_refs",
    "get_training_features",
    "load_definitions",
    "load_repo_config",
    "materialize",
    "open_store",
    "redis_url_to_feast",
    "response_columns",
    "snapshot_times",
    "write_sources",
]
