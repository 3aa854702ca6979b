"""Time to publish and to fetch a synthetic 1M-movie artifact set through the object store.

    python -m benchmarks.scalebench.storage [--movies 1000000] [--dim 64]

The set is what a 1M-movie build adds to the store: the movie embeddings
(`retrieval/movie_embeddings.parquet`, movie id + a `dim`-float32 vector), the exact-search
index (`retrieval/index.npy`, the normalized float32 matrix) and the catalog
(`catalog/movies.parquet`). It is published with `movierec.storage.ObjectStore.publish`
(upload, checksums, BUILD.json, CURRENT) to the local S3 server (`movierec.s3_server`:
moto on 127.0.0.1, credentials checked, everything in memory), then fetched into an empty
cache (download and checksum check) and fetched again (a replica restart: the cached copy
checked, nothing downloaded). Writes `benchmarks/results/storage.json`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from movierec import s3_server
from movierec.storage import ObjectStore

RESULTS = Path(__file__).resolve().parents[1] / "results" / "storage.json"


def make_artifacts(root: Path, movies: int, dim: int, seed: int = 7) -> int:
    """Writes the synthetic set under `root`; returns its size in bytes."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((movies, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = np.arange(1, movies + 1, dtype=np.int64)
    (root / "retrieval").mkdir(parents=True)
    (root / "catalog").mkdir()
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
    pq.write_table(
        pa.table({"movie_id": ids, "embedding": flat}),
        root / "retrieval" / "movie_embeddings.parquet",
    )
    np.save(root / "retrieval" / "index.npy", vectors)
    titles = pa.array([f"Movie {i}" for i in ids.tolist()])
    pq.write_table(
        pa.table({"movie_id": ids, "title": titles}), root / "catalog" / "movies.parquet"
    )
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def measure(movies: int, dim: int) -> dict[str, Any]:
    """Publishes and fetches the set through a local S3 server started for the run."""
    with tempfile.TemporaryDirectory(prefix="storage-bench-") as tmp:
        work = Path(tmp)
        size = make_artifacts(work / "build", movies, dim)
        server = s3_server.start(work / "run", bucket="movierec-bench")
        saved = dict(os.environ)
        os.environ.update(server.env(prefix="bench"))
        try:
            store = ObjectStore(server.storage_uri("bench"))
            started = time.perf_counter()
            store.publish(work / "build", "synthetic", "full", "b1")
            publish_s = time.perf_counter() - started
            started = time.perf_counter()
            store.fetch("synthetic", "full", "", work / "cache")
            fetch_s = time.perf_counter() - started
            restarted = ObjectStore(server.storage_uri("bench"))
            started = time.perf_counter()
            restarted.fetch("synthetic", "full", "", work / "cache")
            cached_s = time.perf_counter() - started
            assert (store.downloads, restarted.downloads, restarted.cache_hits) == (1, 0, 1)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            s3_server.stop(work / "run")
    mib = size / 2**20
    return {
        "movies": movies,
        "dim": dim,
        "files": 3,
        "mib": round(mib, 1),
        "publish_s": round(publish_s, 2),
        "fetch_s": round(fetch_s, 2),
        "cached_fetch_s": round(cached_s, 2),
        "publish_mib_s": round(mib / publish_s, 1),
        "fetch_mib_s": round(mib / fetch_s, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    from benchmarks.common import write_json

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--movies", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = measure(args.movies, args.dim)
    write_json(args.out, result)
    print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
