"""The whole recommender trained on one split's train part and measured on its test part,
in memory: the validation runs of the tuning (a split carved from the training split) and
the second protocol (temporal leave-last-out) use it.

The same code as the artifacts build and `make eval`: the two-tower model
(`train_retrieval`), the item-to-item source (`ItemCFRuntime`), the content source (exact
numpy search over the tree's content embeddings, which depend on the catalog only), Feast
features from the train part, and a ranker built by `build_ranker` on the train part alone.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.data import MovieLens
from models.evaluation.ablation import ablation
from models.evaluation.popularity import popularity_recommendations
from models.evaluation.report import metrics_dict
from models.metrics.protocol import candidate_recall, items_by_user
from models.metrics.ranking import ranking_metrics
from models.ranking.candidates import CONTENT, ITEMCF, RETRIEVAL, ScoredList, ranked_ids
from models.ranking.config import RankerConfig


@dataclass
class SplitRun:
    """One split to train on and measure.

    Attributes:
        train: The ratings everything is built from.
        test: The held-out ratings (every one relevant; the train movies are removed).
        dataset: Movies and users tables.
        content_dir: Content embeddings (catalog only, no ratings).
        k: Metric cut-off.
        retrieval: Overrides of the two-tower `RetrievalConfig`.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    dataset: MovieLens
    content_dir: Path
    k: int = 10
    retrieval: dict[str, Any] = field(default_factory=dict)
    _retrieval_top: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    @property
    def relevant(self) -> dict[int, set[int]]:
        """User -> test movies."""
        return items_by_user(self.test)

    @property
    def users(self) -> list[int]:
        """Users with at least one test movie."""
        return sorted(u for u, items in self.relevant.items() if items)

    def metrics(self, lists: Mapping[int, Sequence[int]]) -> dict[str, float]:
        """The protocol's four metrics of per-user lists."""
        return metrics_dict(ranking_metrics(lists, self.relevant, self.k))

    def retrieval_lists(self, n: int, overrides: Mapping[str, Any] | None = None) -> Any:
        """User -> the two-tower model's top-n unseen movies (trained once per override set)."""
        from models.ranking.build import fit_retrieval, retrieval_config, top_k_from_model
        from models.ranking.candidates import retrieval_lists

        config = retrieval_config(Path("/nonexistent"), {**self.retrieval, **(overrides or {})})
        key = repr(sorted(config.to_dict().items()))
        if key not in self._retrieval_top:
            result = fit_retrieval(self.train, self.dataset, config)
            self._retrieval_top[key] = top_k_from_model(result, self.users, 500)
        ids, scores = self._retrieval_top[key]
        seen = items_by_user(self.train)
        return {u: items[:n] for u, items in retrieval_lists(self.users, ids, scores, seen).items()}

    def itemcf_lists(self, n: int, config: Any) -> dict[int, ScoredList]:
        """User -> the item-to-item source's top-n unseen movies."""
        from models.ranking.build import itemcf_lists

        return itemcf_lists(
            self.train, self.dataset.movies["movie_id"].tolist(), self.users, n, config
        )


def ranked_run(run: SplitRun, config: RankerConfig, *, ablate: bool = True) -> dict[str, Any]:
    """Builds a ranker on `run.train` with `config` and measures every system on `run.test`.

    Returns:
        {"systems": {retrieval, itemcf, content, merged, ranked, popularity: metrics},
        "candidate_recall@max_ranked", "ablation" (when `ablate`), "ranker_build": the build's
        own metrics (its validation on held-out users of the train part)}.
    """
    from models.features import build_feature_tables, write_sources
    from models.ranking.build import build_ranker, exact_content_lists, itemcf_config
    from models.ranking.candidates import build_candidates
    from models.ranking.features import features_as_of, latest_snapshot, offline_store
    from models.ranking.runtime import load_ranker
    from models.ranking.scoring import rank_candidates

    cand = config.candidates
    users, seen = run.users, items_by_user(run.train)
    retrieved = run.retrieval_lists(max(cand.retrieval_n, run.k))
    related = run.itemcf_lists(max(cand.itemcf_n, run.k), itemcf_config(None, config.itemcf))
    content = exact_content_lists(run.content_dir, run.train, cand)
    sources = {
        RETRIEVAL: {u: items[: cand.retrieval_n] for u, items in retrieved.items()},
        CONTENT: content,
        ITEMCF: {u: items[: cand.itemcf_n] for u, items in related.items()},
    }
    work = Path(tempfile.mkdtemp(prefix="split-run-"))
    try:
        features_dir = work / "features"
        tables = build_feature_tables(run.train, run.dataset.movies, run.dataset.users)
        write_sources(tables, features_dir)
        retrieval_meta = work / "retrieval"  # no export: the overrides are the configuration
        build_metrics = build_ranker(
            work / "ranking",
            run.train,
            run.dataset,
            retrieval_meta,
            run.content_dir,
            features_dir,
            config.replace(retrieval={**run.retrieval, **config.retrieval}),
        )
        ranker = load_ranker(work / "ranking")
        store = offline_store(features_dir, work / "registry")
        candidates = build_candidates(users, sources, seen, cand)
        table = pd.DataFrame(
            [(u, c.movie_id) for u, items in candidates.items() for c in items],
            columns=["user_id", "movie_id"],
        )
        features = features_as_of(store, table, latest_snapshot(features_dir))

        def rank(cands: Mapping[int, Sequence[Any]]) -> dict[int, list[int]]:
            return rank_candidates(ranker.score, ranker.spec, cands, features)[0]

        lists = {
            "popularity": popularity_recommendations(run.train, users, run.k),
            "retrieval": {u: [m for m, _ in retrieved[u]] for u in users},
            "itemcf": {u: [m for m, _ in related.get(u, [])] for u in users},
            "content": {u: [m for m, _ in content.get(u, [])] for u in users},
            "merged": ranked_ids(candidates),
            "ranked": rank(candidates),
        }
        out: dict[str, Any] = {
            "systems": {name: run.metrics(values) for name, values in lists.items()},
            f"candidate_recall@{cand.max_ranked}": candidate_recall(
                lists["merged"], run.relevant, cand.max_ranked
            ),
            "ranker_build": {
                key: build_metrics.get(key)
                for key in ("rows", "positives", "validation", "seconds")
            },
        }
        if ablate:
            out["ablation"] = ablation(users, sources, seen, cand, rank, run.relevant, run.k)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
