"""Publishes a finished build to the object store (`MOVIEREC_STORAGE_URI=s3://...`).

Order, so that nothing half-made ever becomes current:

1. every file of the build goes to `<tree>/builds/<id>/` (nothing points at it yet);
2. Redis is loaded, the Feast registry recording the sources' `s3://` paths (so
   materialization reads the offline store from S3), and the registry is uploaded;
3. `BUILD.json` (every file's size and checksum) is written, then `CURRENT` moves to the
   build (`movierec.storage.ObjectStore.commit`).

A failure at any step leaves `CURRENT` on the previous build. A build that `CURRENT` already
names (a rebuild that changed nothing keeps its tree and id) is not uploaded again; only
Redis is loaded from it.
"""

from __future__ import annotations

from models.features.store import REGISTRY_FILE
from models.pipeline.load import load_all
from movierec.layout import ArtifactLayout
from movierec.manifest import Manifest
from movierec.storage import ObjectStore


def build_id_of(layout: ArtifactLayout) -> str:
    """The id of the live local build: its directory's name without the `<mode>.build-`
    prefix (UTC time and a random suffix, e.g. 20261201T233000-1a2b3c)."""
    return layout.root.resolve().name.split(".build-", 1)[-1]


def publish_build(
    layout: ArtifactLayout, manifest: Manifest, store: ObjectStore, load: bool = True
) -> tuple[str, dict[str, str]]:
    """Uploads the live local build, loads Redis from the store's copy, publishes it.

    Returns:
        (build id, Redis load results: target -> "loaded" | "unchanged"; empty without load).

    Raises:
        movierec.storage.StorageError: The store cannot be used (CURRENT unchanged).
        movierec.redis_url.RedisServerError: Redis cannot be reached (CURRENT unchanged).
    """
    build_id = build_id_of(layout)
    sources = store.build_uri(layout.variant, layout.mode, build_id) + "/features"
    store.check()
    published = build_id in store.builds(layout.variant, layout.mode)
    if published and store.current(layout.variant, layout.mode) == build_id:
        return build_id, load_all(layout, manifest, feature_sources=sources) if load else {}
    store.upload(layout.root, layout.variant, layout.mode, build_id)
    results: dict[str, str] = {}
    if load:
        results = load_all(layout, manifest, feature_sources=sources)
        registry = f"{layout.features_dir.name}/{REGISTRY_FILE}"
        store.upload(layout.root, layout.variant, layout.mode, build_id, rel=registry)
    store.commit(layout.root, layout.variant, layout.mode, build_id)
    return build_id, results
