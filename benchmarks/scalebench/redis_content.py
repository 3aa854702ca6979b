"""Redis vector search (RediSearch HNSW) on a synthetic catalog, through movierec's own code.

The index is built by `models.content.index.build_index` (the pipeline's FT.CREATE HNSW
schema, pipelined HSETs, wait until indexed, alias swap) with `IndexConfig(dim=...)`, and
queried through `models.content.client` (`VectorSearch` plans on a `RedisTransport`: the same
KNN plans the Content deployment runs): `run` for one query, `run_many` for a pipelined batch. The
synthetic movies have an embedding and an id but no title, year or genres.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import redis

from benchmarks.common import time_each
from benchmarks.scalebench.data import Catalog, query_batches
from benchmarks.scalebench.series import QuerySeries, summarize
from models.content.client import RedisTransport, VectorSearch
from models.content.index import IndexConfig, build_index, drop_index, index_info

_MB = 1024 * 1024


def server_versions(client: redis.Redis) -> dict[str, str]:
    """The Redis server version and the versions of its loaded modules (e.g. search)."""
    versions = {"redis_server": str(_info(client, "server")["redis_version"])}
    for module in client.execute_command("MODULE", "LIST"):
        fields = {_text(k): v for k, v in zip(module[::2], module[1::2], strict=True)}
        name = _text(fields.get("name", "?"))
        version = int(fields.get("ver", 0))
        versions[f"module_{name}"] = f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return versions


def measure_redis(
    client: redis.Redis,
    catalog: Catalog,
    exact: np.ndarray,
    series: QuerySeries,
    config: IndexConfig,
    *,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
    """Builds the HNSW index of the catalog, times KNN queries, drops the index again.

    Args:
        client: Connection (decode_responses=False) to a Redis with the search module, holding
            nothing else of this benchmark (used_memory deltas are attributed to the index).
        catalog: Items (n, dim) and queries (q, dim).
        exact: int64 (q, >= min(k, n)) exact top-k ids, for recall.
        series: k (KNN K; RediSearch raises EF_RUNTIME to at least K), batch size (KNN
            queries per pipelined round trip), number of batches, warm-up calls.
        config: Index names and HNSW parameters; `dim` must match the catalog.
        timeout_s: Seconds indexing may take.

    Returns:
        `summarize`'s keys (build_s: FT.CREATE to fully indexed, hash writes included;
        build_cpu_s: this process's CPU plus the Redis server's;
        bytes_per_item: INFO used_memory growth, hashes + index; memory also has FT.INFO's
        vector index size) and the HNSW parameters.
    """
    k = min(series.k, len(catalog.items))
    n = len(catalog.items)
    frame = pd.DataFrame({"movie_id": catalog.ids, "embedding": list(catalog.items)})
    memory_before = used_memory(client)
    started, started_cpu = time.perf_counter(), time.process_time() + server_cpu_s(client)
    build = build_index(client, frame, config=config, version="v1", timeout=timeout_s)
    build_s = time.perf_counter() - started
    build_cpu_s = time.process_time() + server_cpu_s(client) - started_cpu
    del frame
    memory_after = used_memory(client)
    info = index_info(client, build.index_name)
    try:
        transport, search = RedisTransport(client), VectorSearch(config.alias)
        found = [[hit.movie_id for hit in transport.run(search.knn(q, k))] for q in catalog.queries]
        single_ms = time_each(
            lambda q: transport.run(search.knn(q, k)), list(catalog.queries), series.warmup
        )
        groups = query_batches(catalog.queries, series.batch_size, series.batches)
        batch_ms = time_each(
            lambda group: transport.run_many([search.knn(q, k) for q in group]),
            groups,
            series.warmup,
        )
    finally:
        client.execute_command("FT.ALIASDEL", config.alias)
        drop_index(client, build.index_name, delete_documents=True)
    used = (memory_after - memory_before) / n
    return summarize(
        build_s=build_s,
        build_cpu_s=build_cpu_s,
        single_ms=single_ms,
        batch_ms=batch_ms,
        found=found,
        exact=exact,
        k=k,
        bytes_per_item=used,
        memory={
            "used_memory_delta_bytes_per_item": used,
            "vector_index_bytes_per_item": float(info["vector_index_sz_mb"]) * _MB / n,
        },
    ) | {
        "params": {
            "m": config.m,
            "ef_construction": config.ef_construction,
            "ef_runtime": max(config.ef_runtime, k),
            "distance": "COSINE",
        }
    }


def used_memory(client: redis.Redis) -> int:
    """INFO memory's used_memory (bytes allocated by Redis)."""
    return int(_info(client, "memory")["used_memory"])


def server_cpu_s(client: redis.Redis) -> float:
    """CPU seconds (user + system, all threads) the Redis server has used since it started."""
    info = _info(client, "cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    info: Any = client.info(section)
    return dict(info)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
