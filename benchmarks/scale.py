"""Scale curve: how retrieval, vector search and feature reads cost as the catalog grows.

    python -m benchmarks.scale [--sizes 10000,100000,1000000] [--dims 64,384] [--queries 200]
    make bench-scale            # the default run, then README tables regenerated

For each catalog size (synthetic movies, see `benchmarks.scalebench.data`) and embedding
dimension it measures, one thread per method, after warm-up:

* TFRS `BruteForce` (exact; the layer of the exported retrieval model): latency of one query
  and of a batch, memory per movie, build time;
* ScaNN (approximate; in its own venv, see `benchmarks.scalebench.scann_worker`): the same,
  plus recall@k against exact top-k;
* Redis HNSW through movierec's `build_index` / `VectorSearch` on a throwaway embedded
  Redis: KNN latency, recall@k, `used_memory` and FT.INFO index size per movie, build time;

and per size, Feast online reads of 100/300/1000 candidates' features through
`OnlineFeatures` after materializing synthetic movie features into the same Redis.

A build whose CPU time, extrapolated linearly from the previous size's (a lower bound for
HNSW, whose inserts slow down with log n), exceeds --build-budget-s is skipped, and the JSON
says so with the estimate: nothing is ever filled in. CPU rather than wall time, so that the
machine's load does not change what a run covers. Writes benchmarks/results/scale.json and
scale.png; with --readme, regenerates the tables in that README from the JSON.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger("benchmarks.scale")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
JSON_NAME = "scale.json"
PNG_NAME = "scale.png"


@dataclass(frozen=True)
class ScaleParams:
    """What one run measures (recorded in the JSON as `parameters`)."""

    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    dims: tuple[int, ...] = (64, 384)
    queries: int = 200
    batch_size: int = 16
    batches: int = 50
    k: int = 100
    warmup: int = 20
    seed: int = 0
    feast_candidates: tuple[int, ...] = (100, 300, 1000)
    feast_queries: int = 100
    build_budget_s: float = 600.0
    tf_threads: int = 1
    scann: bool = True
    scann_python: str = ""


@dataclass
class BuildBudget:
    """Skips builds whose extrapolated CPU time exceeds the budget, and lists what was skipped.

    CPU seconds (of the processes doing the build, the Redis server's included), not wall
    time: other work on the machine stretches wall time, so a wall-time budget would make
    the run's coverage depend on the machine's load.

    Attributes:
        budget_s: Largest build, in CPU seconds, a run may attempt.
        seconds_per_item: Last measured build CPU time per item, per (method, dim).
        skipped: One {"method", "size", "dim", "reason"} per skipped measurement.
    """

    budget_s: float
    seconds_per_item: dict[tuple[str, int], float] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def estimate(self, method: str, dim: int, size: int) -> float | None:
        """CPU seconds: linear extrapolation of the last build of (method, dim), or None."""
        rate = self.seconds_per_item.get((method, dim))
        return None if rate is None else rate * size

    def record(self, method: str, dim: int, size: int, seconds: float) -> None:
        """Remembers a measured build's CPU seconds."""
        self.seconds_per_item[(method, dim)] = seconds / size

    def over(self, method: str, dim: int, size: int) -> str | None:
        """Why a (method, dim) build at `size` is skipped, or None when it fits the budget."""
        estimate = self.estimate(method, dim, size)
        if estimate is None or estimate <= self.budget_s:
            return None
        return (
            f"estimated build {estimate:.0f} CPU-s (the previous size's measured CPU time per "
            f"movie x {size} movies) exceeds --build-budget-s {self.budget_s:.0f}"
        )

    def skip(self, method: str, size: int, dim: int | None, reason: str) -> dict[str, str]:
        """Records a skipped measurement; returns what stands in the results instead."""
        logger.info("  %s skipped at %d movies: %s", method, size, reason)
        self.skipped.append({"method": method, "size": size, "dim": dim, "reason": reason})
        return {"skipped": reason}


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parse_args(argv: list[str] | None = None) -> tuple[ScaleParams, argparse.Namespace]:
    """Parses the command line into `ScaleParams` (plus output options)."""
    from benchmarks.scalebench.scann_index import DEFAULT_SCANN_PYTHON

    d = ScaleParams()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scale", description=__doc__.split("\n\n")[0]
    )
    add = parser.add_argument
    add("--sizes", type=_int_list, default=d.sizes, help="catalog sizes (default %(default)s)")
    add("--dims", type=_int_list, default=d.dims, help="embedding dims (default %(default)s)")
    add("--queries", type=int, default=d.queries, help="timed single queries per series")
    add("--batch-size", type=int, default=d.batch_size, help="queries per batched call")
    add("--batches", type=int, default=d.batches, help="timed batched calls per series")
    add("--k", type=int, default=d.k, help="neighbours per query (recall@k)")
    add("--warmup", type=int, default=d.warmup, help="untimed calls before each series")
    add("--seed", type=int, default=d.seed)
    add("--feast-candidates", type=_int_list, default=d.feast_candidates,
        help="candidate movies per Feast read")  # fmt: skip
    add("--feast-queries", type=int, default=d.feast_queries, help="timed Feast reads per count")
    add("--build-budget-s", type=float, default=d.build_budget_s,
        help="skip a build whose extrapolated CPU time exceeds this (s)")  # fmt: skip
    add("--tf-threads", type=int, default=d.tf_threads,
        help="TensorFlow intra/inter-op threads (the served retrieval uses 1)")  # fmt: skip
    add("--no-scann", action="store_true", help="skip ScaNN (recorded in the JSON)")
    add("--scann-python", type=Path, default=DEFAULT_SCANN_PYTHON,
        help="python of the ScaNN venv (make scann-venv)")  # fmt: skip
    add("--out-dir", type=Path, default=RESULTS_DIR, help="where scale.json/.png go")
    add("--readme", type=Path, default=None, help="regenerate this README's scale tables")
    add("--render-only", action="store_true",
        help="only re-render the PNG (and --readme) from the existing JSON")  # fmt: skip
    args = parser.parse_args(argv)
    for name in ("queries", "batch_size", "batches", "k", "feast_queries", "tf_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0 or args.build_budget_s <= 0:
        parser.error("--warmup must be >= 0 and --build-budget-s > 0")
    if min(args.dims) < 2:
        parser.error("--dims must be >= 2")
    params = ScaleParams(
        sizes=tuple(sorted(set(args.sizes))),
        dims=tuple(sorted(set(args.dims))),
        queries=args.queries,
        batch_size=args.batch_size,
        batches=args.batches,
        k=args.k,
        warmup=args.warmup,
        seed=args.seed,
        feast_candidates=tuple(sorted(set(args.feast_candidates))),
        feast_queries=args.feast_queries,
        build_budget_s=args.build_budget_s,
        tf_threads=args.tf_threads,
        scann=not args.no_scann,
        scann_python=str(args.scann_python),
    )
    return params, args


def run(params: ScaleParams, work_dir: Path) -> dict[str, Any]:
    """Runs every measurement; returns the JSON payload.

    Args:
        params: What to measure.
        work_dir: Scratch space (embedded Redis, Feast parquet and registry).
    """
    import redis

    from benchmarks.common import load_average, machine_info, utc_now
    from benchmarks.scalebench.data import CLUSTER_NOISE, ITEMS_PER_CLUSTER
    from benchmarks.scalebench.redis_content import server_versions
    from benchmarks.scalebench.scann_index import check_scann_python
    from models.tensorflow_env import configure_threads
    from movierec.redis_server import embedded_redis

    started, load_before, created = time.perf_counter(), load_average(), utc_now()
    configure_threads(params.tf_threads, params.tf_threads)
    scann_version = check_scann_python(Path(params.scann_python)) if params.scann else None
    budget = BuildBudget(params.build_budget_s)
    results: list[dict[str, Any]] = []
    feast: list[dict[str, Any]] = []
    with embedded_redis(work_dir / "redis") as url:
        client = redis.Redis.from_url(url, decode_responses=False)
        try:
            servers = server_versions(client)
            for size in params.sizes:
                for dim in params.dims:
                    results.append(_measure_retrieval(params, client, size, dim, budget))
                feast.append(_measure_feast(params, client, url, size, work_dir, budget))
        finally:
            client.close()

    machine = machine_info(
        ("numpy", "tensorflow", "tensorflow-recommenders", "ray", "redis", "feast")
    )
    machine["versions"] |= servers | {"scann": scann_version}
    return {
        "benchmark": "scale",
        "created": created,
        "duration_s": time.perf_counter() - started,
        "machine": machine,
        "load_average": {"before": load_before, "after": load_average()},
        "parameters": {k: v for k, v in asdict(params).items() if k != "scann_python"},
        "dataset": {
            "kind": "Gaussian mixture on the unit sphere, fresh draws as queries",
            "items_per_cluster": ITEMS_PER_CLUSTER,
            "cluster_noise": CLUSTER_NOISE,
            "similarity": "dot product of unit vectors (= cosine)",
        },
        "coverage": _coverage(results, feast),
        "results": results,
        "feast": feast,
        "skipped": budget.skipped,
    }


def _measure_retrieval(
    params: ScaleParams,
    client: Any,
    size: int,
    dim: int,
    budget: BuildBudget,
) -> dict[str, Any]:
    """BruteForce, ScaNN and Redis HNSW on one (size, dim) catalog."""
    from benchmarks.common import load_average
    from benchmarks.scalebench.bruteforce import measure_bruteforce
    from benchmarks.scalebench.data import exact_top_k, make_catalog
    from benchmarks.scalebench.redis_content import measure_redis
    from benchmarks.scalebench.scann_index import measure_scann
    from benchmarks.scalebench.series import QuerySeries
    from models.content.index import IndexConfig

    logger.info("catalog of %d movies, %d-d", size, dim)
    load_at_start = load_average()
    catalog = make_catalog(size, dim, params.queries, params.seed)
    exact = exact_top_k(catalog.items, catalog.queries, params.k)
    series = QuerySeries(params.k, params.batch_size, params.batches, params.warmup)
    methods: dict[str, Any] = {}
    logger.info("  bruteforce")
    methods["bruteforce"] = measure_bruteforce(catalog, exact, series)
    gc.collect()
    reason = "--no-scann" if not params.scann else budget.over("scann", dim, size)
    if reason:
        methods["scann"] = budget.skip("scann", size, dim, reason)
    else:
        logger.info("  scann")
        methods["scann"] = measure_scann(catalog, exact, series, python=Path(params.scann_python))
        budget.record("scann", dim, size, methods["scann"]["build_cpu_s"])
    reason = budget.over("redis_hnsw", dim, size)
    if reason:
        methods["redis_hnsw"] = budget.skip("redis_hnsw", size, dim, reason)
    else:
        logger.info("  redis_hnsw")
        client.flushall()
        config = IndexConfig(alias=f"scale{size}d{dim}", key_prefix=f"scale{size}d{dim}", dim=dim)
        methods["redis_hnsw"] = measure_redis(client, catalog, exact, series, config)
        budget.record("redis_hnsw", dim, size, methods["redis_hnsw"]["build_cpu_s"])
        client.flushall()
    return {
        "size": size,
        "dim": dim,
        "n_clusters": catalog.n_clusters,
        "load_average": {"before": load_at_start, "after": load_average()},
        "methods": methods,
    }


def _measure_feast(
    params: ScaleParams,
    client: Any,
    url: str,
    size: int,
    work_dir: Path,
    budget: BuildBudget,
) -> dict[str, Any]:
    """Feast materialization and candidate reads for one catalog size."""
    from benchmarks.common import load_average
    from benchmarks.scalebench.feast_reads import measure_feast

    too_many = [c for c in params.feast_candidates if c > size]
    reason = budget.over("feast", 0, size) or (
        f"candidate counts {too_many} exceed the catalog" if too_many else None
    )
    if reason:
        return {"size": size} | budget.skip("feast", size, None, reason)
    logger.info("feast, %d movies", size)
    load_at_start = load_average()
    client.flushall()
    result = measure_feast(
        client,
        url,
        size,
        work_dir,
        candidate_counts=params.feast_candidates,
        queries=params.feast_queries,
        warmup=params.warmup,
        seed=params.seed,
    )
    client.flushall()
    budget.record("feast", 0, size, result["write"]["materialize_cpu_s"])
    return {
        "size": size,
        "load_average": {"before": load_at_start, "after": load_average()},
    } | result


def _coverage(results: list[dict[str, Any]], feast: list[dict[str, Any]]) -> dict[str, Any]:
    """Which (method, dim) ran at which sizes."""
    ran: dict[str, dict[str, list[int]]] = {}
    for entry in results:
        for method, result in entry["methods"].items():
            if "skipped" not in result:
                ran.setdefault(method, {}).setdefault(str(entry["dim"]), []).append(entry["size"])
    ran["feast"] = {"any": [e["size"] for e in feast if "skipped" not in e]}
    return ran


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("feast").setLevel(logging.WARNING)  # per-call registry refresh notes
    params, args = parse_args(argv)
    from benchmarks.common import update_readme_block, write_json
    from benchmarks.scalebench import report

    json_path, png_path = args.out_dir / JSON_NAME, args.out_dir / PNG_NAME
    try:
        if args.render_only:
            import json

            payload = json.loads(json_path.read_text())
        else:
            with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
                payload = run(params, Path(tmp))
            write_json(json_path, payload)
        report.plot(payload, png_path)
        if args.readme is not None:
            update_readme_block(
                args.readme, report.README_BEGIN, report.README_END, report.render_markdown(payload)
            )
    except (OSError, ValueError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.render_markdown(payload))
    print(f"wrote {png_path}" if args.render_only else f"wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
