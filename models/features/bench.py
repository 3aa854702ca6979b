"""Latency of Feast online reads on a built feature store, per read path.

    python -m models.features.bench --redis-url redis://:PW@127.0.0.1:PORT/0 \\
        --registry artifacts/features/registry.db [--rounds 5 --block 60]

Reported as p50/p95 wall-clock milliseconds for 1 user, and 100 and 300 candidate movies,
plus the median CPU time of the calling thread (Feast's Python work; unlike wall time it
barely moves when other processes load the machine).
Registry configurations: the YAML's (file registry, "sync" cache: mtime check per access,
re-read every 60 s) vs the reader's (`cache_ttl_seconds: 0`: re-read only when the file
changes) vs "thread" cache mode (for a file registry in Feast 0.67: no mtime check, re-read
in the request path when the TTL lapses).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from feast import FeatureStore, FileSource

from models.features.runtime import READER_OVERRIDES, OnlineFeatures, response_columns
from models.features.store import RANKER_SERVICE, open_store


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered), p95


def _variants(
    stores: dict[str, FeatureStore],
    reader: OnlineFeatures,
    size: int,
    movie_ids: np.ndarray,
    rng: np.random.Generator,
    loop: asyncio.AbstractEventLoop,
) -> dict[str, Callable[[], Any]]:
    store = reader.store
    user_id = 1
    if size == 1:
        refs, key, ids = reader.user_refs, "user_id", [user_id]
    else:
        refs, key = reader.movie_refs, "movie_id"
        ids = [int(m) for m in rng.choice(movie_ids, size=size, replace=False)]
    variants: dict[str, Callable[[], Any]] = {}

    def dict_rows(s: FeatureStore) -> Callable[[], Any]:
        return lambda: s.get_online_features(refs, [{key: i} for i in ids]).to_dict()

    for label, s in stores.items():
        variants[f"{label}: refs, row dicts, to_dict"] = dict_rows(s)
    variants["reader: refs, columnar, to_dict"] = lambda: store.get_online_features(
        refs, {key: ids}
    ).to_dict()
    variants["reader: refs, columnar, to_arrow"] = lambda: store.get_online_features(
        refs, {key: ids}
    ).to_arrow()
    variants["reader: refs, columnar, proto"] = lambda: response_columns(
        store.get_online_features(refs, {key: ids}), skip=(key,)
    )
    variants["reader: async refs, columnar, proto"] = lambda: response_columns(
        loop.run_until_complete(store.get_online_features_async(refs, {key: ids})), skip=(key,)
    )
    if size == 1:
        variants["OnlineFeatures.get_user_features"] = lambda: reader.get_user_features(user_id)
        variants["OnlineFeatures.get_user_features_async"] = lambda: loop.run_until_complete(
            reader.get_user_features_async(user_id)
        )
        variants["OnlineFeatures.get_user_history"] = lambda: reader.get_user_history(user_id)
        return variants
    ranker = store.get_feature_service(RANKER_SERVICE)
    variants["reader: service ranker_v1, user+movies in 1 call, proto"] = lambda: response_columns(
        store.get_online_features(ranker, {"user_id": [user_id] * size, "movie_id": ids})
    )
    variants["OnlineFeatures.get_movie_features (precomputed ranker_movie_v1)"] = lambda: (
        reader.get_movie_features(ids)
    )
    variants["OnlineFeatures.get_movie_features_async (precomputed)"] = lambda: (
        loop.run_until_complete(reader.get_movie_features_async(ids))
    )
    return variants


def run(
    redis_url: str,
    registry_path: Path,
    *,
    rounds: int = 5,
    block: int = 60,
    sizes: tuple[int, ...] = (100, 300),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (request, variant): p50/p95 ms over rounds x block calls.

    Each round runs every variant for `block` consecutive calls (after 5 untimed ones), so
    slow phases of a busy machine are spread over all variants.
    """
    stores = {
        "yaml (sync, ttl 60)": open_store(redis_url, registry_path=registry_path),
        "reader (sync, ttl 0)": open_store(
            redis_url, registry_path=registry_path, overrides=READER_OVERRIDES
        ),
        "no mtime check (thread, ttl 60)": open_store(
            redis_url,
            registry_path=registry_path,
            overrides={"registry": {"cache_mode": "thread", "cache_ttl_seconds": 60}},
        ),
    }
    reader = OnlineFeatures(stores["reader (sync, ttl 0)"])
    movie_ids = np.array(sorted(set(_all_movie_ids(reader.store))), dtype=np.int64)
    rng = np.random.default_rng(seed)
    loop = asyncio.new_event_loop()
    rows: list[dict[str, Any]] = []
    try:
        for size in (1, *sizes):
            what = "1 user" if size == 1 else f"{size} movies"
            variants = _variants(stores, reader, size, movie_ids, rng, loop)
            samples: dict[str, list[float]] = {name: [] for name in variants}
            cpu: dict[str, list[float]] = {name: [] for name in variants}
            for _ in range(rounds):
                for name, call in variants.items():
                    gc.collect()
                    for _ in range(5):
                        call()
                    for _ in range(block):
                        start, start_cpu = time.perf_counter(), time.thread_time()
                        call()
                        samples[name].append((time.perf_counter() - start) * 1000)
                        cpu[name].append((time.thread_time() - start_cpu) * 1000)
            for name, values in samples.items():
                p50, p95 = _percentiles(values)
                cpu50 = statistics.median(cpu[name])
                rows.append(
                    {"request": what, "variant": name, "p50_ms": p50, "p95_ms": p95,
                     "cpu_p50_ms": cpu50}
                )  # fmt: skip
    finally:
        loop.close()
    return rows


def _all_movie_ids(store: FeatureStore) -> list[int]:
    source = store.get_feature_view("movie_metadata").batch_source
    if not isinstance(source, FileSource):
        raise TypeError("movie_metadata's source is not a FileSource")
    path = Path(source.path)
    return [int(x) for x in pq.read_table(path, columns=["movie_id"]).column(0).to_pylist()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--registry", required=True, type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--block", type=int, default=60)
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    rows = run(args.redis_url, args.registry, rounds=args.rounds, block=args.block)
    print(f"load average after: {os.getloadavg()}")
    print("| request | variant | p50 ms | p95 ms | client CPU p50 ms |")
    print("|---|---|---:|---:|---:|")
    for row in rows:
        p50, p95, cpu = row["p50_ms"], row["p95_ms"], row["cpu_p50_ms"]
        print(f"| {row['request']} | {row['variant']} | {p50:.2f} | {p95:.2f} | {cpu:.2f} |")


if __name__ == "__main__":
    main()
