"""Tiny but real artifacts for the serving tests, built by the real offline code.

A slice of ml-100k (the first users and movies by id) goes through:

* `models.pipeline.build` (splits, catalog + popularity, a 2-epoch two-tower export, MiniLM
  content embeddings, Feast feature snapshots),
* `models.pipeline.load` (the versioned HNSW index behind the tree's alias, Feast apply +
  materialize) into the test's Redis, and, while the pipeline builds no ranker,
* a tiny Keras ranker that follows the Ranking contract (`tests/deployments/_ranker.py`).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import redis

from models.data import MovieLens, load_dataset
from movierec.layout import ArtifactLayout, Mode
from movierec.manifest import Manifest

VARIANT = "ml-100k"
MODE: Mode = "eval"
MAX_USER_ID = 200
MAX_MOVIE_ID = 500
RETRIEVAL_OVERRIDES: dict[str, object] = {
    "epochs": 2,
    "batch_size": 512,
    "embedding_dim": 32,
    "id_embedding_dim": 32,
    "feature_embedding_dim": 8,
    "intra_op_threads": 2,
    "inter_op_threads": 2,
}


@dataclass
class TinyArtifacts:
    """A built tree and what the tests need to check answers against it.

    Attributes:
        artifacts_dir: Root passed to the app (`AppArgs.artifacts_dir`).
        layout: The tree.
        dataset: The sliced dataset.
        train: The training split the models and features were built from.
        seconds: Build time per step.
    """

    artifacts_dir: Path
    layout: ArtifactLayout
    dataset: MovieLens
    train: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def seen(self) -> dict[int, set[int]]:
        """User id -> the movies the served features count as seen (the training split)."""
        seen: dict[int, set[int]] = {}
        for user, movie in zip(
            self.train["user_id"].tolist(), self.train["movie_id"].tolist(), strict=True
        ):
            seen.setdefault(int(user), set()).add(int(movie))
        return seen


def sliced_ml100k(max_user_id: int = MAX_USER_ID, max_movie_id: int = MAX_MOVIE_ID) -> MovieLens:
    """ml-100k restricted to users <= max_user_id and movies <= max_movie_id."""
    full = load_dataset(VARIANT)
    ratings = full.ratings[
        (full.ratings["user_id"] <= max_user_id) & (full.ratings["movie_id"] <= max_movie_id)
    ].reset_index(drop=True)
    movies = full.movies[full.movies["movie_id"] <= max_movie_id].reset_index(drop=True)
    users = None
    if full.users is not None:
        users = full.users[full.users["user_id"] <= max_user_id].reset_index(drop=True)
    return MovieLens(variant=VARIANT, ratings=ratings, movies=movies, users=users, tags=None)


_BUILT: list[Path] = []
"""The artifacts dir of this test process's first build (later calls copy it)."""


def build_tiny_artifacts(artifacts_dir: Path, redis_url: str) -> TinyArtifacts:
    """Builds every artifact the app serves into `artifacts_dir`, loads Redis at `redis_url`.

    The files are built once per test process (about 100 s on 2 cores): later calls copy
    that build (symlinked tree included) and only load their own Redis.
    """
    from models.pipeline.build import BuildOptions, build

    seconds: dict[str, float] = {}
    dataset = sliced_ml100k()
    started = time.perf_counter()
    if _BUILT and _BUILT[0].exists() and not artifacts_dir.exists():
        shutil.copytree(_BUILT[0], artifacts_dir, symlinks=True)
        seconds["copy"] = time.perf_counter() - started
        layout = ArtifactLayout.of(artifacts_dir, VARIANT, MODE)
        manifest = Manifest.load(layout.root)
        if manifest is None:
            raise RuntimeError(f"no manifest in the copied tree {layout.root}")
        started = time.perf_counter()
        _load_redis(layout, manifest, redis_url)
        seconds["redis"] = time.perf_counter() - started
        train = pd.read_parquet(layout.splits_dir / "train.parquet")
        return TinyArtifacts(artifacts_dir, layout, dataset, train, seconds)
    options = BuildOptions(
        variant=VARIANT, mode=MODE, artifacts_dir=artifacts_dir, retrieval=RETRIEVAL_OVERRIDES
    )
    manifest = build(options, dataset=dataset)
    seconds["pipeline"] = time.perf_counter() - started
    layout = ArtifactLayout.of(artifacts_dir, VARIANT, MODE)
    train = pd.read_parquet(layout.splits_dir / "train.parquet")

    started = time.perf_counter()
    if "content" not in manifest.steps:
        _build_content_files(layout, dataset)
    if "features" not in manifest.steps:
        raise RuntimeError("the pipeline no longer builds the feature snapshots")
    _load_redis(layout, manifest, redis_url)
    seconds["redis"] = time.perf_counter() - started
    if not (layout.ranking_dir / "saved_model").exists():
        from tests.deployments._ranker import export_tiny_ranker

        started = time.perf_counter()
        export_tiny_ranker(layout.ranking_dir)
        seconds["ranking"] = time.perf_counter() - started
    _BUILT[:] = [artifacts_dir]
    return TinyArtifacts(artifacts_dir, layout, dataset, train, seconds)


def _build_content_files(layout: ArtifactLayout, dataset: MovieLens) -> None:
    from models.content.embeddings import embed_movies, load_encoder, write_embeddings

    frame = embed_movies(dataset.movies, dataset.tags, load_encoder(num_threads=2))
    write_embeddings(frame, layout.content_dir)


def _load_redis(layout: ArtifactLayout, manifest: Manifest, redis_url: str) -> None:
    """What `python -m models.pipeline` does after a build, on the test's Redis."""
    from models.pipeline.load import load_online_features, load_vector_index

    client = redis.Redis.from_url(redis_url)
    try:
        load_vector_index(layout, manifest, client)
        load_online_features(layout, manifest, client, redis_url)
    finally:
        client.close()
