"""Feast reads of the ranker: the `ranker_v1` feature service, point-in-time correct.

The ranker reads its user and movie features through Feast's `get_historical_features`
(via `models.features.get_training_features`), on the same definitions
(feature_repo/movierec_repo.py) and parquet snapshots that the online store is materialized
from. The store is opened on a private registry (applied from the definitions, sources in
`features_dir`), so reading never depends on, or changes, the registry the pipeline wrote.
Offline reads never contact Redis; the connection string is a placeholder.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from feast import FeatureStore

from models.features.store import (
    RANKER_SERVICE,
    apply_definitions,
    get_training_features,
    open_store,
)

OFFLINE_ONLY_REDIS_URL = "redis://127.0.0.1:6379/0"
"""Feast's config needs an online store; offline reads never connect to it."""

FEATURE_SERVICE = RANKER_SERVICE


def offline_store(features_dir: Path, registry_dir: Path) -> FeatureStore:
    """A FeatureStore over `features_dir`'s parquet sources with a registry in `registry_dir`.

    Args:
        features_dir: The features step's output (the five `<view>.parquet` sources).
        registry_dir: A writable directory for the private registry file.
    """
    registry_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(
        OFFLINE_ONLY_REDIS_URL,
        data_dir=features_dir,
        registry_path=registry_dir / "ranker_registry.db",
    )
    apply_definitions(store, features_dir)
    return store


def point_in_time_features(store: FeatureStore, rows: pd.DataFrame) -> pd.DataFrame:
    """`rows` (user_id, movie_id, timestamp in seconds, ...) with the ranker's features.

    Each row gets, per feature view, the newest snapshot stamped at or before its time
    (nulls if none); rows keep their order and extra columns.
    """
    return get_training_features(store, rows, FEATURE_SERVICE)


def features_as_of(store: FeatureStore, rows: pd.DataFrame, at: pd.Timestamp) -> pd.DataFrame:
    """The features every row would be served: the newest snapshot at or before `at`."""
    stamp = pd.Timestamp(at)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    stamped = rows.drop(columns=["timestamp"], errors="ignore").assign(event_timestamp=stamp)
    return get_training_features(store, stamped, FEATURE_SERVICE)


def latest_snapshot(features_dir: Path) -> pd.Timestamp:
    """The newest event timestamp of the sources: the state the online store serves."""
    newest = pd.Timestamp(0, tz="UTC")
    for path in sorted(Path(features_dir).glob("*.parquet")):
        stamps = pd.read_parquet(path, columns=["event_timestamp"])["event_timestamp"]
        if len(stamps):
            newest = max(newest, pd.Timestamp(stamps.max()).tz_convert("UTC"))
    return newest
