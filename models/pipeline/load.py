"""Loads a built artifacts tree into Redis: the content vector index (and Feast's online store).

Runs after the file artifacts are swapped in. Each load is keyed by the fingerprint of the
step that produced its input and checked against Redis itself, not the manifest, so a fresh
or flushed Redis is reloaded while an up-to-date one is left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd
import redis

from models.content.embeddings import read_embeddings
from models.content.index import IndexConfig, build_index, resolve_alias
from models.features.store import REGISTRY_FILE, apply_definitions, materialize, open_store
from movierec.layout import ArtifactLayout
from movierec.manifest import Manifest
from movierec.redis_server import save_snapshot
from movierec.redis_url import resolve_redis_url

log = logging.getLogger(__name__)


def content_index_config(layout: ArtifactLayout) -> IndexConfig:
    """The index names of a layout: its alias and a namespaced key prefix."""
    return IndexConfig(alias=layout.content_index_alias, key_prefix=f"{layout.namespace}_movie")


def content_version(manifest: Manifest) -> str:
    """Index version name of this build's content embeddings (a fingerprint prefix)."""
    return "v" + manifest.steps["content"].fingerprint[:12]


def load_vector_index(layout: ArtifactLayout, manifest: Manifest, client: redis.Redis) -> str:
    """Builds the content index under the layout's alias unless that version is live.

    Args:
        layout: The artifacts tree (names the alias and key prefix).
        manifest: Its manifest (names the content version).
        client: Redis with the search module (bytes responses).

    Returns:
        "loaded" or "unchanged".
    """
    config = content_index_config(layout)
    version = content_version(manifest)
    if resolve_alias(client, config.alias) == config.index_name(version):
        return "unchanged"
    movies = pd.read_parquet(layout.catalog_dir / "movies.parquet")
    embeddings = read_embeddings(layout.content_dir)
    build = build_index(client, embeddings, movies, config, version=version)
    log.info("indexed %d movies into %s", build.num_docs, build.index_name)
    return "loaded"


SOURCES_FILE = ".sources"
"""Next to the registry: where the registry's sources live ("local" or the store's tree)."""


def load_online_features(
    layout: ArtifactLayout,
    manifest: Manifest,
    client: redis.Redis,
    redis_url: str,
    sources: str | None = None,
) -> str:
    """Applies the Feast definitions and materializes the snapshots unless already loaded.

    Args:
        layout: The artifacts tree (its features dir holds the sources and the registry).
        manifest: Its manifest (the features step's fingerprint and time range).
        client: Redis client, used to record which build is materialized.
        redis_url: The same Redis, for Feast.
        sources: The parquet sources' location when not the local features dir: the
            `s3://` prefix of this build's features in the object store, which the registry
            then records and materialization reads.

    Returns:
        "loaded" or "unchanged".
    """
    record = manifest.steps["features"]
    key = layout.features_version_key
    registry = layout.features_dir / REGISTRY_FILE
    marker = layout.features_dir / SOURCES_FILE
    # The same features already live, from sources in the same place (an older build's
    # identical parquet in the store is as good as this one's).
    place = sources.rsplit("/builds/", 1)[0] if sources else "local"
    placed = marker.read_text() if marker.exists() else "local"
    if registry.exists() and client.get(key) == record.fingerprint.encode() and placed == place:
        return "unchanged"
    data_dir = sources or layout.features_dir
    store = open_store(redis_url, data_dir, registry, project=layout.feast_project)
    apply_definitions(store, data_dir)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(place)
    tmp.replace(marker)  # a new file: never through a hard link into an older build
    materialize(
        store,
        datetime.fromisoformat(record.metrics["materialize_start"]),
        datetime.fromisoformat(record.metrics["materialize_end"]),
    )
    client.set(key, record.fingerprint)
    return "loaded"


def load_all(
    layout: ArtifactLayout,
    manifest: Manifest,
    feature_sources: str | None = None,
    redis_url: str | None = None,
) -> dict[str, str]:
    """Loads everything Redis-side for a layout, starting the embedded Redis if needed.

    Redis is snapshotted after a load (`save_snapshot`). `feature_sources`: see
    `load_online_features`. `redis_url`: this Redis instead of the configured one (a
    benchmark's private server).

    Returns:
        Target name -> "loaded" or "unchanged".
    """
    url = redis_url or resolve_redis_url(start_if_needed=True)
    client = redis.Redis.from_url(url)
    try:
        results = {
            "content_index": load_vector_index(layout, manifest, client),
            "features": load_online_features(layout, manifest, client, url, feature_sources),
        }
    finally:
        client.close()
    if "loaded" in results.values():
        save_snapshot(url)  # a crashed Redis restarts with the data, not empty
    return results
