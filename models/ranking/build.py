"""The ranking pipeline step: `build_ranker(...)` trains the ranker and exports it.

Steps (training split only; nothing here reads a test split):

1. split each user's training ratings into fit (80%) and label (20%) parts (`folds` times,
   with different seeds, pooling the rows);
2. train a retrieval model on the fit part with the served model's configuration (the
   served model memorizes its training positives: its candidates cannot be labeled);
3. make candidates as the Controller does (retrieval top-N, vector search top-N for the
   user's fit-part liked seeds, reciprocal-rank-fusion merge, fit-part movies removed);
4. label them (in the label part or not) and read their Feast features through the
   point-in-time join (`RankerConfig.feature_time`: by default from snapshots of the fit
   part read at its newest snapshot, exactly as serving reads the newest snapshot of the
   training ratings; or the pipeline's snapshots at each example's rating time);
5. build the input arrays with `ranker_inputs` (the serving code), train, validate on
   held-out users, export `saved_model/` + `inputs.json` (+ `ranker.json`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.content.embeddings import embedding_matrix, read_embeddings
from models.content.exact import ExactIndex
from models.content.offline import exact_recommendations
from models.data import MovieLens
from models.metrics.protocol import candidate_recall, items_by_user
from models.metrics.ranking import ranking_metrics
from models.ranking.candidates import (
    CONTENT,
    ITEMCF,
    RETRIEVAL,
    build_candidates,
    content_lists,
    liked_seeds,
    ranked_ids,
    retrieval_lists,
)
from models.ranking.config import CandidateConfig, RankerConfig
from models.ranking.dataset import build_input_rows, concat_rows, labeled_rows, split_fit_label
from models.ranking.export import METADATA_FILE, export_ranker
from models.ranking.features import offline_store, point_in_time_features
from models.ranking.inputs import input_spec
from models.ranking.scoring import rank_lists
from movierec.candidates import Candidate

log = logging.getLogger(__name__)

K = 10


def retrieval_config(retrieval_dir: Path, overrides: Mapping[str, Any]) -> Any:
    """The served retrieval model's `RetrievalConfig` (its metadata.json), with overrides."""
    from models.retrieval.config import RetrievalConfig

    meta_path = Path(retrieval_dir) / "metadata.json"
    base = json.loads(meta_path.read_text())["config"] if meta_path.exists() else {}
    return RetrievalConfig.from_dict({**RetrievalConfig().to_dict(), **base, **overrides})


_FIT_CACHE: dict[str, Any] | None = None


@contextlib.contextmanager
def reuse_fit_retrieval() -> Iterator[None]:
    """Within the block, fit-part retrieval models are trained once per (ratings,
    configuration) and reused (tuning runs build many rankers on the same fold)."""
    global _FIT_CACHE
    previous, _FIT_CACHE = _FIT_CACHE, {}
    try:
        yield
    finally:
        _FIT_CACHE = previous


def fit_retrieval(ratings: pd.DataFrame, dataset: MovieLens, rconfig: Any) -> Any:
    """`train_retrieval` on `ratings` (reused inside `reuse_fit_retrieval`)."""
    from models.retrieval.train import train_retrieval

    if _FIT_CACHE is None:
        return train_retrieval(ratings, dataset.movies, dataset.users, rconfig)
    rows = pd.util.hash_pandas_object(ratings[["user_id", "movie_id"]], index=False)
    digest = hashlib.sha256(rows.to_numpy().tobytes())
    digest.update(json.dumps(rconfig.to_dict(), sort_keys=True, default=str).encode())
    key = digest.hexdigest()
    if key not in _FIT_CACHE:
        _FIT_CACHE[key] = train_retrieval(ratings, dataset.movies, dataset.users, rconfig)
    return _FIT_CACHE[key]


def itemcf_config(itemcf_dir: Path | None, overrides: Mapping[str, Any]) -> Any:
    """The served item-to-item source's `ItemCFConfig` (its itemcf.json), with overrides."""
    from models.itemcf.runtime import METADATA_FILE as ITEMCF_META
    from models.itemcf.similarity import ItemCFConfig

    meta_path = None if itemcf_dir is None else Path(itemcf_dir) / ITEMCF_META
    base = json.loads(meta_path.read_text())["config"] if meta_path and meta_path.exists() else {}
    return ItemCFConfig(**{**ItemCFConfig().to_dict(), **base, **overrides})


def itemcf_lists(
    ratings: pd.DataFrame, movie_ids: Sequence[int], users: Sequence[int], n: int, config: Any
) -> dict[int, list[tuple[int, float]]]:
    """Item-to-item lists (seen movies excluded) of `users` from a source fit on `ratings`."""
    from models.itemcf.runtime import ItemCFRuntime

    if n == 0:
        return {}
    runtime = ItemCFRuntime.fit(ratings, movie_ids, config)
    tops = runtime.top_k(users, n)
    return {
        int(u): list(zip(ids.tolist(), scores.tolist(), strict=True))
        for u, (ids, scores) in zip(users, tops, strict=True)
    }


def top_k_from_model(result: Any, users: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (movie ids, scores) of a trained two-tower model for known users.

    Same as the exported BruteForce index (dot product over the whole catalog).
    """
    rows = result.users.rows(np.asarray(users, dtype=np.int64))
    queries = result.model.user_tower(rows, training=False).numpy()
    catalog = result.model.catalog_embeddings(training=False).numpy()
    scores = queries @ catalog.T
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    cols = np.take_along_axis(part, order, axis=1)
    return result.movies.movie_id[cols], np.take_along_axis(scores, cols, axis=1)


def exact_content_lists(
    content_dir: Path, ratings: pd.DataFrame, config: CandidateConfig
) -> dict[int, list[tuple[int, float]]]:
    """Vector-search lists computed exactly in numpy (same semantics as the Redis index)."""
    if config.content_n == 0:
        return {}
    index = ExactIndex(*embedding_matrix(read_embeddings(content_dir)))
    seeds = liked_seeds(ratings, config.n_seeds, config.like_threshold)
    table = exact_recommendations(
        index, ratings, config.content_n, seeds=seeds, aggregation=config.content_aggregation
    )
    return content_lists(table)


def training_candidates(
    fit: pd.DataFrame,
    dataset: MovieLens,
    retrieval_dir: Path,
    content_dir: Path,
    config: RankerConfig,
    itemcf_dir: Path | None = None,
) -> tuple[dict[int, list[Candidate]], dict[str, float]]:
    """Candidates of every user from a retrieval model trained on the fit part only."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    rconfig = retrieval_config(retrieval_dir, config.retrieval)
    result = fit_retrieval(fit, dataset, rconfig)
    timings["fit_retrieval"] = time.perf_counter() - started

    started = time.perf_counter()
    users = sorted(int(u) for u in fit["user_id"].unique())
    seen = items_by_user(fit)
    ids, scores = top_k_from_model(result, users, config.candidates.retrieval_n)
    retrieval = retrieval_lists(users, ids, scores, seen)
    content = exact_content_lists(content_dir, fit, config.candidates)
    related = itemcf_lists(
        fit,
        dataset.movies["movie_id"].tolist(),
        users,
        config.candidates.itemcf_n,
        itemcf_config(itemcf_dir, config.itemcf),
    )
    sources = {RETRIEVAL: retrieval, CONTENT: content, ITEMCF: related}
    candidates = build_candidates(users, sources, seen, config.candidates)
    timings["candidates"] = time.perf_counter() - started
    return candidates, timings


def _label_metrics(
    lists: Mapping[int, Sequence[int]], relevant: Mapping[int, set[int]]
) -> dict[str, float]:
    metrics = ranking_metrics(lists, relevant, K)
    return {
        f"precision@{K}": metrics.precision,
        f"recall@{K}": metrics.recall,
        f"ndcg@{K}": metrics.ndcg,
        f"map@{K}": metrics.map,
    }


def fit_part_feature_sources(
    fit: pd.DataFrame, dataset: MovieLens, out_dir: Path
) -> tuple[Path, int]:
    """Feast sources (the pipeline's snapshot code) built from the fit part only.

    Returns:
        (the sources' directory, the newest snapshot's time in seconds).
    """
    from models.features import build_feature_tables, write_sources

    tables = build_feature_tables(fit, dataset.movies, dataset.users)
    write_sources(tables, out_dir)
    return out_dir, int(tables.snapshot_times[-1])


@dataclass
class TrainingData:
    """Everything the ranker is fitted on from one fit/label split (one fold).

    Attributes:
        candidates: User -> merged candidates of the fit-part models.
        frame: One row per (user, candidate): labels, timestamps, Feast features.
        relevant: User -> label-part movies.
        timings: Seconds per stage.
        fold: Index of the split (its seed is `split_seed + fold`).
    """

    candidates: dict[int, list[Candidate]]
    frame: pd.DataFrame
    relevant: dict[int, set[int]]
    timings: dict[str, float] = field(default_factory=dict)
    fold: int = 0


def prepare_fold(
    train: pd.DataFrame,
    dataset: MovieLens,
    retrieval_dir: Path,
    content_dir: Path,
    features_dir: Path,
    config: RankerConfig,
    fold: int = 0,
    itemcf_dir: Path | None = None,
) -> TrainingData:
    """Steps 1-4 for one split: fit/label, fit-part candidates, labels, Feast features."""
    fit, label = split_fit_label(train, config.label_fraction, config.split_seed + fold)
    candidates, timings = training_candidates(
        fit, dataset, retrieval_dir, content_dir, config, itemcf_dir
    )
    started = time.perf_counter()
    rows = labeled_rows(candidates, label, config.seed + fold)
    work = Path(tempfile.mkdtemp(prefix="ranker-feast-"))
    try:
        if config.feature_time == "fit_end":
            source_dir, stamp = fit_part_feature_sources(fit, dataset, work / "fit_features")
            rows = rows.assign(label_timestamp=rows["timestamp"], timestamp=stamp)
        else:
            source_dir = Path(features_dir)
        store = offline_store(source_dir, work / "registry")
        frame = point_in_time_features(store, rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    timings["features"] = time.perf_counter() - started
    return TrainingData(candidates, frame, items_by_user(label), timings, fold)


def prepare_training_data(
    train: pd.DataFrame,
    dataset: MovieLens,
    retrieval_dir: Path,
    content_dir: Path,
    features_dir: Path,
    config: RankerConfig,
    itemcf_dir: Path | None = None,
) -> list[TrainingData]:
    """Steps 1-4 for each of the `config.folds` splits."""
    return [
        prepare_fold(
            train, dataset, retrieval_dir, content_dir, features_dir, config, fold, itemcf_dir
        )
        for fold in range(config.folds)
    ]


def _sum_timings(parts: Sequence[TrainingData]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        for name, value in part.timings.items():
            out[name] = out.get(name, 0.0) + value
    return out


def fit_and_export(
    data: TrainingData | Sequence[TrainingData],
    dataset: MovieLens,
    out_dir: Path,
    config: RankerConfig,
    verbose: int = 0,
) -> dict[str, Any]:
    """Step 5: input arrays, training, validation on held-out users, export.

    Validation users (a `validation_users` share, the same in every fold) are left out of
    training; the metrics are computed on the first fold's label part.
    """
    from models.ranking.train import predict, train_ranker, user_weights

    folds = [data] if isinstance(data, TrainingData) else list(data)
    first = folds[0]
    timings = _sum_timings(folds)
    candidate_lists = ranked_ids(first.candidates)
    recall = candidate_recall(candidate_lists, first.relevant, config.candidates.max_ranked)

    started = time.perf_counter()
    spec = input_spec(config)
    parts = []
    for part in folds:
        rows = build_input_rows(spec, part.frame, part.candidates)
        rows.frame["fold"] = part.fold
        parts.append(rows)
    inputs = concat_rows(parts)
    timings["inputs"] = time.perf_counter() - started

    users = np.array(sorted(inputs.frame["user_id"].unique()))
    rng = np.random.default_rng(config.seed)
    n_val = round(len(users) * config.validation_users)
    val_users = set(rng.choice(users, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = inputs.frame["user_id"].isin(val_users).to_numpy()
    train_rows = inputs.take(np.flatnonzero(~is_val))
    labels = train_rows.frame["label"].to_numpy(np.float32)
    weights = None
    if config.user_weight_exponent:
        counts = {u: len(items) for u, items in first.relevant.items()}
        weights = user_weights(
            train_rows.frame["user_id"].to_numpy(), counts, config.user_weight_exponent
        )

    started = time.perf_counter()
    occupations = (
        dataset.users["occupation"].dropna().astype(str).unique().tolist()
        if dataset.users is not None and "occupation" in dataset.users
        else []
    )
    trained = train_ranker(
        train_rows,
        labels,
        config,
        occupations=occupations,
        movie_ids=dataset.movies["movie_id"].tolist(),
        weights=weights,
        verbose=verbose,
    )
    timings["train"] = time.perf_counter() - started

    metrics: dict[str, Any] = {
        "rows": len(inputs.frame),
        "positives": int(inputs.frame["label"].sum()),
        "users": len(users),
        "folds": len(folds),
        "validation_users": len(val_users),
        f"label_candidate_recall@{config.candidates.max_ranked}": recall,
        "final_loss": trained.history.get("loss", [None])[-1],
    }
    if val_users:
        is_first = inputs.frame["fold"].to_numpy() == first.fold
        val_rows = inputs.take(np.flatnonzero(is_val & is_first))
        val_relevant = {u: first.relevant[u] for u in val_users if u in first.relevant}
        ranked = rank_lists(val_rows, predict(trained.net, val_rows.arrays))
        merged = {u: candidate_lists[u] for u in val_users}
        retrieval_order = {
            u: [
                c.movie_id
                for c in sorted(
                    (c for c in first.candidates[u] if "retrieval" in c.source_ranks),
                    key=lambda c: c.source_ranks["retrieval"],
                )
            ]
            for u in val_users
        }
        metrics["validation"] = {
            "ranked": _label_metrics(ranked, val_relevant),
            "merged": _label_metrics(merged, val_relevant),
            "retrieval": _label_metrics(retrieval_order, val_relevant),
        }

    started = time.perf_counter()
    export_ranker(trained.net, config, out_dir, {"metrics": metrics})
    timings["export"] = time.perf_counter() - started
    metrics["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    return metrics


def build_ranker(
    out_dir: Path,
    train: pd.DataFrame,
    dataset: MovieLens,
    retrieval_dir: Path,
    content_dir: Path,
    features_dir: Path,
    config: RankerConfig | None = None,
    verbose: int = 0,
    itemcf_dir: Path | None = None,
) -> dict[str, Any]:
    """Trains the ranker on the training split and writes it to `out_dir`.

    Args:
        out_dir: Target directory: `saved_model/`, `inputs.json`, `ranker.json` are written.
        train: The training ratings (eval mode: the 75% split; full mode: all ratings).
        dataset: The dataset (movies and users tables).
        retrieval_dir: The served retrieval model's export (its configuration is reused for
            the fit-part model).
        content_dir: The content embeddings (`content_embeddings.parquet`).
        features_dir: The Feast parquet sources built from the same `train`.
        config: Hyperparameters; `RankerConfig()` by default.
        verbose: Keras verbosity.
        itemcf_dir: The served item-to-item source (its configuration is reused for the
            fit-part one); None: `ItemCFConfig` defaults.

    Returns:
        Metrics: validation quality (ranker, merged order, retrieval order) on held-out
        users' label parts, candidate recall, row counts and per-stage seconds.
    """
    config = config or RankerConfig()
    started = time.perf_counter()
    data = prepare_training_data(
        train, dataset, retrieval_dir, content_dir, features_dir, config, itemcf_dir
    )
    metrics = fit_and_export(data, dataset, Path(out_dir), config, verbose)
    metrics["seconds"]["total"] = round(time.perf_counter() - started, 1)
    meta_path = Path(out_dir) / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["metrics"] = metrics
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    log.info("ranker built in %.1f s: %s", metrics["seconds"]["total"], metrics.get("validation"))
    return metrics
