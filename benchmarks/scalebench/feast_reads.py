"""Feast online reads of candidate-movie features on a synthetic catalog of n movies.

Synthetic movie rows (the `movie_metadata` and `movie_features` schemas of
`models.features.snapshots.SCHEMAS`, one snapshot) go through the pipeline's own steps:
`write_sources` (parquet), `apply_definitions` (feature_repo/movierec_repo.py, as
`feast apply`) and `materialize` (Feast's materialization into the Redis online store,
which also writes the precomputed `ranker_movie_v1` vectors). Reads go through
`models.features.runtime.OnlineFeatures.get_movie_features(_async)`, the reader the Features
deployment uses, without the deployment's in-process movie cache in front of it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import redis
from feast import FeatureStore

from benchmarks.common import percentiles, time_each
from benchmarks.scalebench.redis_content import server_cpu_s, used_memory
from models.features.genres import GENRES
from models.features.runtime import OnlineFeatures
from models.features.snapshots import EVENT_TIMESTAMP, SCHEMAS, FeatureTables
from models.features.store import (
    ENV_REGISTRY,
    FEATURE_REPO_DIR,
    RANKER_MOVIE_SERVICE,
    apply_definitions,
    feast_env,
    load_repo_config,
    materialize,
    write_sources,
)

MOVIE_VIEWS = ("movie_metadata", "movie_features")
SNAPSHOT_TIME = datetime(2024, 1, 1, tzinfo=UTC)
"""Event time of every synthetic row (materialized with a one-second margin)."""


def movie_feature_tables(n_movies: int, seed: int) -> FeatureTables:
    """Synthetic feature tables: n movies (ids 0..n-1) in the movie views, no users.

    Genres: 1 to 3 distinct genres per movie; years 1920-2024 (2% unknown); rating counts
    from a heavy-tailed distribution (some movies unrated: mean null); popularity percentile
    as the pipeline defines it.
    """
    rng = np.random.default_rng([seed, n_movies])
    ids = np.arange(n_movies, dtype=np.int64)
    stamp = pa.array(np.full(n_movies, int(SNAPSHOT_TIME.timestamp() * 1e6)), pa.int64())
    stamps = stamp.cast(SCHEMAS["movie_metadata"].field(EVENT_TIMESTAMP).type)

    n_genres = rng.integers(1, 4, n_movies)
    picks = np.argsort(rng.random((n_movies, len(GENRES))), axis=1)[:, :3]
    keep = np.arange(3)[None, :] < n_genres[:, None]
    multi_hot = np.zeros((n_movies, len(GENRES)), dtype=np.float32)
    np.put_along_axis(multi_hot, picks, keep.astype(np.float32), axis=1)
    names = np.array(GENRES, dtype=object)[picks[keep]]
    offsets = np.concatenate([[0], np.cumsum(n_genres)]).astype(np.int32)
    genres = pa.ListArray.from_arrays(pa.array(offsets), pa.array(names, pa.string()))
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(multi_hot.ravel()), len(GENRES))
    years = rng.integers(1920, 2025, n_movies)
    metadata = pa.Table.from_arrays(
        [
            pa.array(ids),
            stamps,
            genres,
            vectors.cast(pa.list_(pa.float32())),
            pa.array(years, pa.int64(), mask=rng.random(n_movies) < 0.02),
        ],
        schema=SCHEMAS["movie_metadata"],
    )

    counts = np.floor(rng.pareto(1.2, n_movies) * 3).astype(np.int64)
    rated = counts > 0
    means = np.clip(rng.normal(3.5, 0.6, n_movies), 1, 5).astype(np.float32)
    recent = rng.binomial(counts, 0.05).astype(np.int64)
    sorted_counts = np.sort(counts[rated])
    pct = np.where(
        rated,
        np.searchsorted(sorted_counts, counts, side="right") / max(1, int(rated.sum())),
        0.0,
    ).astype(np.float32)
    features = pa.Table.from_arrays(
        [
            pa.array(ids),
            stamps,
            pa.array(counts),
            pa.array(means, pa.float32(), mask=~rated),
            pa.array(recent),
            pa.array(pct),
        ],
        schema=SCHEMAS["movie_features"],
    )
    empty = {name: SCHEMAS[name].empty_table() for name in SCHEMAS if name not in MOVIE_VIEWS}
    return FeatureTables(
        movie_metadata=metadata,
        movie_features=features,
        snapshot_times=np.array([int(SNAPSHOT_TIME.timestamp())], dtype=np.int64),
        **empty,
    )


def write_catalog_features(
    client: redis.Redis, redis_url: str, n_movies: int, work_dir: Path, *, seed: int
) -> tuple[dict[str, Any], Path, str]:
    """Writes n synthetic movies' features into the online store (parquet, apply, materialize).

    Returns:
        (timings and memory, registry path, Feast project name).
    """
    project = f"scale_{n_movies}"
    data_dir = work_dir / project
    started = time.perf_counter()
    tables = movie_feature_tables(n_movies, seed)
    write_sources(tables, data_dir)
    parquet_s = time.perf_counter() - started

    env = feast_env(redis_url, data_dir, project=project)
    started = time.perf_counter()
    store = FeatureStore(repo_path=str(FEATURE_REPO_DIR), config=load_repo_config(env))
    apply_definitions(store, data_dir)
    apply_s = time.perf_counter() - started

    memory_before = used_memory(client)
    started, started_cpu = time.perf_counter(), time.process_time() + server_cpu_s(client)
    margin = timedelta(seconds=1)
    materialize(store, SNAPSHOT_TIME - margin, SNAPSHOT_TIME + margin, feature_views=MOVIE_VIEWS)
    materialize_s = time.perf_counter() - started
    materialize_cpu_s = time.process_time() + server_cpu_s(client) - started_cpu
    memory_after = used_memory(client)
    write = {
        "parquet_s": parquet_s,
        "apply_s": apply_s,
        "materialize_s": materialize_s,
        "materialize_cpu_s": materialize_cpu_s,
        "materialize_rows_per_s": n_movies / materialize_s,
        "used_memory_delta_bytes_per_item": (memory_after - memory_before) / n_movies,
    }
    return write, Path(env[ENV_REGISTRY]), project


def measure_feast(
    client: redis.Redis,
    redis_url: str,
    n_movies: int,
    work_dir: Path,
    *,
    candidate_counts: tuple[int, ...],
    queries: int,
    warmup: int,
    seed: int,
) -> dict[str, Any]:
    """Materializes n synthetic movies, then times candidate-feature reads.

    Args:
        client: Connection to the Redis that Feast writes to (for used_memory).
        redis_url: Its URL, for Feast.
        n_movies: Catalog size.
        work_dir: Where the parquet sources and the registry go.
        candidate_counts: Movies per read (each <= n_movies).
        queries: Timed reads per count, each of a fresh random set of movie ids.
        warmup: Untimed reads first.
        seed: Seed of the data and of the id draws.

    Returns:
        "write" (parquet/apply/materialize seconds, materialize CPU seconds of this
        process and Redis, rows/s, Redis bytes per movie),
        "read_path" and "reads": {count: {"sync_ms", "async_ms"}} percentile dicts.

    Raises:
        RuntimeError: A read came back with missing values (nothing would be measured).
    """
    too_many = [c for c in candidate_counts if c > n_movies]
    if too_many:
        raise ValueError(f"candidate counts {too_many} exceed the catalog of {n_movies}")
    write, registry, project = write_catalog_features(
        client, redis_url, n_movies, work_dir, seed=seed
    )
    reader = OnlineFeatures.open(redis_url, registry, project)
    read_path = _read_path(reader)
    rng = np.random.default_rng([seed, n_movies, 1])
    loop = asyncio.new_event_loop()
    reads: dict[str, Any] = {}
    try:
        for count in candidate_counts:
            id_sets = [
                [int(i) for i in rng.choice(n_movies, count, replace=False)] for _ in range(queries)
            ]
            _check_complete(reader.get_movie_features(id_sets[0]), count)
            _check_complete(
                loop.run_until_complete(reader.get_movie_features_async(id_sets[0])), count
            )
            sync_ms = time_each(reader.get_movie_features, id_sets, warmup)
            async_ms = time_each(
                lambda ids: loop.run_until_complete(reader.get_movie_features_async(ids)),
                id_sets,
                warmup,
            )
            reads[str(count)] = {"sync_ms": percentiles(sync_ms), "async_ms": percentiles(async_ms)}
    finally:
        loop.close()
    return {"write": write, "read_path": read_path, "reads": reads}


def _read_path(reader: OnlineFeatures) -> str:
    """Which read the reader takes: the precomputed service vectors, or per view."""
    try:
        reader.store.get_online_features(
            reader.store.get_feature_service(RANKER_MOVIE_SERVICE),
            {"movie_id": [0]},
            full_feature_names=True,
        )
    except RuntimeError:
        return "per feature view (precomputed vectors missing)"
    return f"precomputed {RANKER_MOVIE_SERVICE} vectors"


def _check_complete(columns: dict[str, list[Any]], count: int) -> None:
    """Every movie of the read must have come back (ids 0..n-1 all exist)."""
    for name in ("movie_rating_count", "movie_genre_vector"):
        values = columns[name]
        if len(values) != count or any(v is None for v in values):
            raise RuntimeError(f"Feast read of {count} movies returned missing {name} values")
