"""Offline quality report of every stage of the recommender (`make eval`).

Evaluates the EVAL artifacts tree (everything built from the training split of the
stratified 75/25 seed-42 split) against the test split, under the protocol of
`models.metrics.protocol`: training-seen items removed, k = 10, binary relevance (every
test rating counts), metrics averaged over the users with at least one test item.

Systems, each served the way production serves it:

* popularity - the most-rated training movies (baseline);
* retrieval  - the exported two-tower SavedModel's top list, seen movies dropped;
* content    - Redis vector search (the content index loaded as serving loads it) for the
               user's top-liked seeds;
* itemcf     - the item-to-item source (`models.itemcf.runtime`, as the Retrieval
               deployment serves it): unseen movies most similar to the user's;
* merged     - both candidate lists merged by `movierec.candidates.merge_candidates`
               (reciprocal-rank fusion) in merged order, cut to `max_ranked`;
* ranked     - the merged candidates re-ordered by the exported ranker SavedModel (reloaded
               from disk), its inputs built by `models.ranking.inputs.ranker_inputs` from
               Feast features as the online store serves them (the newest snapshot).

`served_with_rules` also reports the ranked lists after the Controller's post-rules
(`movierec.rules.apply_post_rules`, default genre cap). `ablation` ranks again without each
candidate source (the same ranker, that source's list left out, as when it fails in
serving): a source earns its place when `ranked` beats `ranked` without it. `tuning` is the
record of the choices made on the validation split (`models.evaluation.tuning`, never the
test split), and `temporal` the second protocol (`models.evaluation.temporal`).

Writes `quality.json` and `quality.png` (bar plot) to the output directory.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.evaluation.popularity import popularity_recommendations
from models.metrics.protocol import candidate_recall, items_by_user
from models.metrics.ranking import RankingMetrics, ranking_metrics

log = logging.getLogger(__name__)

QUALITY_JSON = "quality.json"
QUALITY_PNG = "quality.png"
SYSTEMS: tuple[str, ...] = ("popularity", "retrieval", "content", "itemcf", "merged", "ranked")
REQUIRED_STEPS: tuple[str, ...] = ("splits", "retrieval", "content", "features", "ranking")

ANCHORS: dict[str, Any] = {
    "source": (
        "Microsoft Recommenders ml-100k benchmark (stratified 75/25 split, seed 42, k=10, "
        "seen removed, binary relevance)"
    ),
    "systems": {
        "popularity": {"ndcg@10": 0.253, "precision@10": 0.225},
        "SAR": {"ndcg@10": 0.382, "precision@10": 0.331},
        "LightGCN": {"ndcg@10": 0.420, "precision@10": 0.380},
        "BPR": {"ndcg@10": 0.442, "precision@10": 0.388},
        "BiVAE": {"ndcg@10": 0.475, "precision@10": 0.412},
    },
    "target_ranked": {"ndcg@10": 0.45, "precision@10": 0.40},
}


class EvaluationError(RuntimeError):
    """The evaluation cannot run (missing artifacts, unusable inputs); the message says why."""


@dataclass
class EvalOptions:
    """What to evaluate and where to write.

    Attributes:
        variant: MovieLens variant.
        artifacts_dir: Root of the artifacts trees (the eval tree is `<variant>/eval`).
        out_dir: Where quality.json and quality.png go.
        k: Cut-off of the metrics.
        build_missing: Build the eval artifacts first if any is missing.
        ranking_dir: Evaluate this ranker instead of the tree's `ranking/` (experiments).
        redis_url: The Redis for vector search; None: `REDIS_URL`, else the embedded Redis
            (started if needed).
        temporal: Also report the temporal leave-last-out protocol (`temporal`).
    """

    variant: str
    artifacts_dir: Path
    out_dir: Path = Path("benchmarks/results")
    k: int = 10
    build_missing: bool = True
    ranking_dir: Path | None = None
    redis_url: str | None = None
    temporal: bool = True


def metrics_dict(metrics: RankingMetrics) -> dict[str, float]:
    """{"precision@k", "recall@k", "ndcg@k", "map@k"} of one system."""
    k = metrics.k
    return {
        f"precision@{k}": metrics.precision,
        f"recall@{k}": metrics.recall,
        f"ndcg@{k}": metrics.ndcg,
        f"map@{k}": metrics.map,
    }


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 2)


# --- artifacts ---------------------------------------------------------------------------------


def ensure_artifacts(options: EvalOptions) -> Any:
    """The eval tree's layout and manifest, building it first if a required step is missing.

    Returns:
        (layout, manifest, built: bool).
    """
    from movierec.layout import ArtifactLayout
    from movierec.manifest import Manifest

    layout = ArtifactLayout.of(options.artifacts_dir, options.variant, "eval")
    manifest = Manifest.load(layout.root)
    built = False
    if _missing_steps(manifest) and options.build_missing:
        from models.pipeline.build import BuildOptions, build

        log.info("building the eval artifacts under %s", layout.root)
        manifest = build(BuildOptions(options.variant, "eval", options.artifacts_dir))
        built = True
    if manifest is None:
        raise EvaluationError(f"no artifacts manifest at {layout.root}; run `make artifacts`")
    needed = [s for s in _missing_steps(manifest) if s != "ranking"]
    if needed:
        raise EvaluationError(
            f"the eval artifacts at {layout.root} lack step(s) {', '.join(needed)}; "
            "run `make artifacts`"
        )
    return layout, manifest, built


STANDALONE_DIR = "eval-ranking-standalone"


def standalone_ranker(layout: Any, manifest: Any, dataset: Any, train: pd.DataFrame) -> Path:
    """A ranker for an eval tree whose build has no ranking step (not wired yet).

    Built with `build_ranker` from the tree's own training split, retrieval model, content
    embeddings and feature sources into `<artifacts>/<variant>/eval-ranking-standalone/`
    (outside the tree, which the pipeline swaps atomically), and reused while those inputs
    keep their fingerprints.
    """
    from models.ranking.build import build_ranker
    from models.ranking.runtime import METADATA_FILE

    target = layout.root.parent / STANDALONE_DIR
    inputs = {
        s: manifest.steps[s].fingerprint for s in ("splits", "retrieval", "content", "features")
    }
    meta_path = target / METADATA_FILE
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("inputs") == inputs:
            return target
    log.info("the eval tree has no ranking step: building a standalone ranker in %s", target)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    build_ranker(
        staging,
        train,
        dataset,
        layout.retrieval_dir,
        layout.content_dir,
        layout.features_dir,
        itemcf_dir=layout.itemcf_dir,
    )
    meta = json.loads((staging / METADATA_FILE).read_text())
    meta["inputs"] = inputs
    (staging / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def _missing_steps(manifest: Any) -> list[str]:
    if manifest is None:
        return list(REQUIRED_STEPS)
    return [step for step in REQUIRED_STEPS if step not in manifest.steps]


# --- systems -----------------------------------------------------------------------------------


def retrieval_top(
    retrieval_dir: Path, users: Sequence[int], users_table: pd.DataFrame | None, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """The exported retrieval model's top-n (ids [U, n], scores [U, n]) for users, with their
    side features from `users_table` (the serving runtime, one batched query)."""
    from models.retrieval.runtime import RetrievalRuntime, UserSideFeatures, load_retriever

    retriever = load_retriever(retrieval_dir, intra_op_threads=2, inter_op_threads=2)
    table = None if users_table is None else users_table.drop_duplicates("user_id")
    runtime = RetrievalRuntime(retriever, UserSideFeatures(table, "dataset"))
    return runtime.top_k(list(users), min(n, runtime.k))


def redis_content_lists(
    layout: Any,
    manifest: Any,
    train: pd.DataFrame,
    candidates: Any,
    redis_url: str | None = None,
) -> dict[int, list[tuple[int, float]]]:
    """Vector-search lists served by Redis: the content index loaded as serving loads it."""
    import redis

    from models.content.client import RedisTransport, VectorSearch
    from models.content.offline import content_recommendations
    from models.pipeline.load import load_vector_index
    from models.ranking.candidates import content_lists, liked_seeds
    from movierec.redis_url import resolve_redis_url

    url = redis_url or resolve_redis_url(start_if_needed=True)
    client = redis.Redis.from_url(url, decode_responses=False)
    try:
        status = load_vector_index(layout, manifest, client)
        log.info("content index %s (%s)", layout.content_index_alias, status)
        seeds = liked_seeds(train, candidates.n_seeds, candidates.like_threshold)
        table = content_recommendations(
            RedisTransport(client),
            VectorSearch(layout.content_index_alias),
            train,
            candidates.content_n,
            seeds=seeds,
            aggregation=candidates.content_aggregation,
        )
    finally:
        client.close()
    return content_lists(table)


def served_features(features_dir: Path, candidates: Mapping[int, Sequence[Any]]) -> pd.DataFrame:
    """Every candidate's Feast features as the online store serves them (newest snapshot)."""
    from models.ranking.candidates import candidate_table
    from models.ranking.features import features_as_of, latest_snapshot, offline_store

    work = Path(tempfile.mkdtemp(prefix="eval-feast-"))
    try:
        store = offline_store(features_dir, work)
        table = candidate_table(candidates)[["user_id", "movie_id"]]
        return features_as_of(store, table, latest_snapshot(features_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ranked_lists(
    ranking_dir: Path,
    features_dir: Path,
    candidates: Mapping[int, Sequence[Any]],
    features: pd.DataFrame | None = None,
) -> tuple[dict[int, list[int]], dict[tuple[int, int], float]]:
    """Candidates re-ordered by the ranker SavedModel, with served (newest) Feast features.

    Args:
        features: The candidates' features when already read (`served_features` of these
            candidates or of a superset); None reads them.

    Returns:
        (user -> ranked movie ids, (user, movie) -> score).
    """
    from models.ranking.runtime import load_ranker
    from models.ranking.scoring import rank_candidates

    ranker = load_ranker(ranking_dir)
    if features is None:
        features = served_features(features_dir, candidates)
    ranked, rows, scores = rank_candidates(ranker.score, ranker.spec, candidates, features)
    frame = rows.frame
    score_of = {
        (int(u), int(m)): float(s)
        for u, m, s in zip(frame["user_id"], frame["movie_id"], scores, strict=True)
    }
    return ranked, score_of


def with_rules(
    ranked: Mapping[int, Sequence[int]],
    scores: Mapping[tuple[int, int], float],
    movies: pd.DataFrame,
    k: int,
) -> dict[int, list[int]]:
    """Ranked lists after the Controller's post-rules (boosts, genre cap) at their defaults."""
    from movierec.rules import Item, RuleConfig, apply_post_rules

    catalog = movies.drop_duplicates("movie_id").set_index("movie_id")
    ids = catalog.index.to_numpy(np.int64).tolist()
    genres = {
        m: tuple(str(g) for g in (gs if gs is not None else ()))
        for m, gs in zip(ids, catalog["genres"].tolist(), strict=True)
    }
    years = pd.to_numeric(catalog["year"], errors="coerce")
    year_of = {
        m: (None if pd.isna(y) else int(y)) for m, y in zip(ids, years.tolist(), strict=True)
    }
    newest = int(years.max()) if years.notna().any() else None
    config = RuleConfig()
    out: dict[int, list[int]] = {}
    for user, movie_ids in ranked.items():
        items = [Item(m, scores[(user, m)], genres.get(m, ()), year_of.get(m)) for m in movie_ids]
        out[user] = [i.movie_id for i in apply_post_rules(items, config, newest, k)]
    return out


# --- the report --------------------------------------------------------------------------------


def evaluate(options: EvalOptions) -> dict[str, Any]:
    """Runs every system on the test split and returns the report (see the module doc)."""
    timer = _Timer()
    started = time.perf_counter()
    layout, manifest, built = timer.run("artifacts", lambda: ensure_artifacts(options))

    from models.data import load_dataset
    from models.evaluation.ablation import ablation, itemcf_source_lists
    from models.evaluation.tuning import tuning_record
    from models.ranking.candidates import (
        CONTENT,
        ITEMCF,
        RETRIEVAL,
        build_candidates,
        ranked_ids,
        retrieval_lists,
    )
    from models.ranking.config import RankerConfig
    from models.ranking.runtime import METADATA_FILE

    train = pd.read_parquet(layout.splits_dir / "train.parquet")
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    if test.empty:
        raise EvaluationError(f"{layout.splits_dir}/test.parquet is empty")
    dataset = timer.run("load_dataset", lambda: load_dataset(options.variant))
    if options.ranking_dir is not None:
        ranking_dir = Path(options.ranking_dir)
    elif "ranking" in manifest.steps:
        ranking_dir = layout.ranking_dir
    else:
        ranking_dir = timer.run(
            "standalone_ranker", lambda: standalone_ranker(layout, manifest, dataset, train)
        )
    meta_path = ranking_dir / METADATA_FILE
    ranker_meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    config = (
        RankerConfig.from_dict(ranker_meta["config"]) if "config" in ranker_meta else RankerConfig()
    )
    cand = config.candidates
    k = options.k
    relevant = items_by_user(test)
    seen = items_by_user(train)
    users = sorted(u for u, items in relevant.items() if items)

    lists: dict[str, dict[int, list[int]]] = {}
    lists["popularity"] = timer.run(
        "popularity", lambda: popularity_recommendations(train, users, k)
    )
    ids, scores = timer.run(
        "retrieval",
        lambda: retrieval_top(layout.retrieval_dir, users, dataset.users, max(cand.retrieval_n, k)),
    )
    retrieved = retrieval_lists(users, ids, scores, seen)
    lists["retrieval"] = {u: [m for m, _ in items] for u, items in retrieved.items()}
    content = timer.run(
        "content", lambda: redis_content_lists(layout, manifest, train, cand, options.redis_url)
    )
    lists["content"] = {u: [m for m, _ in content.get(u, [])] for u in users}
    related = timer.run("itemcf", lambda: itemcf_source_lists(layout.itemcf_dir, users, cand))
    lists["itemcf"] = {u: [m for m, _ in related.get(u, [])] for u in users}
    sources = {RETRIEVAL: retrieved, CONTENT: content, ITEMCF: related}
    candidates = timer.run("merge", lambda: build_candidates(users, sources, seen, cand))
    lists["merged"] = ranked_ids(candidates)
    features = timer.run("features", lambda: served_features(layout.features_dir, candidates))
    ranked, ranker_scores = timer.run(
        "ranking", lambda: ranked_lists(ranking_dir, layout.features_dir, candidates, features)
    )
    lists["ranked"] = ranked
    served = with_rules(ranked, ranker_scores, dataset.movies, k)
    ablated = timer.run(
        "ablation",
        lambda: ablation(
            users,
            sources,
            seen,
            cand,
            lambda c: ranked_lists(ranking_dir, layout.features_dir, c, features)[0],
            relevant,
            k,
        ),
    )

    systems = {name: metrics_dict(ranking_metrics(lists[name], relevant, k)) for name in SYSTEMS}
    recall_k = cand.max_ranked
    report: dict[str, Any] = {
        "dataset": options.variant,
        "protocol": {
            "split": "stratified per user (MS Recommenders python_stratified_split)",
            "ratio": 0.75,
            "seed": 42,
            "k": k,
            "relevance": "binary: every test rating is relevant",
            "seen_removed": True,
            "users": len(users),
            "averaging": "mean over users with >= 1 test item",
            "map_denominator": "min(n_relevant, k)",
        },
        "systems": systems,
        f"candidate_recall@{recall_k}": candidate_recall(lists["merged"], relevant, recall_k),
        "candidate_recall": {
            "k": recall_k,
            "merged": candidate_recall(lists["merged"], relevant, recall_k),
            "retrieval": candidate_recall(lists["retrieval"], relevant, cand.retrieval_n),
            "content": candidate_recall(lists["content"], relevant, cand.content_n),
            "itemcf": candidate_recall(lists["itemcf"], relevant, max(cand.itemcf_n, 1)),
        },
        "served_with_rules": metrics_dict(ranking_metrics(served, relevant, k)),
        "ablation": ablated,
        "tuning": tuning_record(options.out_dir, options.variant),
        "candidates": {
            "retrieval_n": cand.retrieval_n,
            "content_n": cand.content_n,
            "itemcf_n": cand.itemcf_n,
            "union": cand.union,
            "n_seeds": cand.n_seeds,
            "content_aggregation": cand.content_aggregation,
            "weights": cand.weights,
            "max_ranked": cand.max_ranked,
            "mean_list_length": float(np.mean([len(c) for c in candidates.values()])),
        },
        "anchors": ANCHORS if options.variant == "ml-100k" else {},
        "timings": {
            "eval_seconds": timer.seconds,
            "eval_total_seconds": round(time.perf_counter() - started, 1),
            "artifacts_built_now": built,
            "build_seconds": {name: rec.seconds for name, rec in manifest.steps.items()},
        },
        "data_hash": manifest.data_hash,
        "artifacts": {
            "root": str(layout.root.resolve()),
            "fingerprints": {name: rec.fingerprint for name, rec in manifest.steps.items()},
            "ranking_dir": str(ranking_dir),
            "ranker_features": list(config.features),
            "ranker_loss": config.loss,
        },
    }
    if options.temporal:
        from models.evaluation.temporal import temporal_report

        fingerprints = {name: rec.fingerprint for name, rec in manifest.steps.items()}
        report["temporal"] = timer.run(
            "temporal", lambda: temporal_report(options.variant, layout, fingerprints, k)
        )
        report["timings"]["eval_seconds"] = timer.seconds
    return report


def write_report(report: Mapping[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Writes quality.json and quality.png into `out_dir`; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / QUALITY_JSON
    tmp = json_path.with_name(json_path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False, default=_json_default) + "\n")
    os.replace(tmp, json_path)
    png_path = out_dir / QUALITY_PNG
    plot_report(report, png_path)
    return json_path, png_path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def plot_report(report: Mapping[str, Any], path: Path) -> Path:
    """Grouped bar plot: the four metrics per system, with the anchors as reference lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = report["systems"]
    names = list(systems)
    metrics = list(next(iter(systems.values())))
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, metric in enumerate(metrics):
        values = [systems[name][metric] for name in names]
        bars = ax.bar(x + (i - (len(metrics) - 1) / 2) * width, values, width, label=metric)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=1)
    # The published anchors were measured on ml-100k's stratified protocol only.
    anchors = (
        report.get("anchors", {}).get("systems", {}) if report.get("dataset") == "ml-100k" else {}
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, (name, values) in enumerate(anchors.items()):
        if "ndcg@10" in values:
            ax.axhline(
                values["ndcg@10"],
                linestyle=":",
                linewidth=0.9,
                color=colors[(j + 4) % len(colors)],
                label=f"{name} nDCG@10 {values['ndcg@10']:.3f}",
            )
    ax.set_xticks(x, names)
    ax.set_ylabel("score")
    ax.set_title(
        f"{report.get('dataset', '')}: top-{report['protocol']['k']} quality "
        "(seen removed, binary relevance)"
    )
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    ax.set_ylim(0, max(0.6, max(v for s in systems.values() for v in s.values()) * 1.15))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
