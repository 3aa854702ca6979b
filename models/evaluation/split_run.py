"""The whole recommender trained on one split's train part and measured on its test part,
in memory: the validation runs of the tuning (a split carved from the training split) and
the second protocol (temporal leave-last-out) use it.

The same code as the artifacts build and `make eval`: the two-tower model
(`train_retrieval`), the item-to-item source (`ItemCFRuntime`), the content source (exact
numpy search over the tree's content embeddings, which depend on the catalog only), Feast
features from the train part, and a ranker built by `build_ranker` on the train part alone.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
from models.ranking.config import CandidateConfig, RankerConfig
from movierec.candidates import Candidate


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


@dataclass
class RankedSetup:
    """One split's candidate sources, a ranker trained on its train part, and the Feast
    features of every candidate the sources can make (served as of the newest snapshot).

    Attributes:
        run: The split.
        config: The configuration the ranker was trained with.
        sources: Source name -> user -> that source's list (seen dropped), at least as
            long as `config`'s count.
        seen: User -> the train part's movies.
        ranker: The trained ranker (`models.ranking.runtime.Ranker`).
        features: One row per (user, candidate movie) of `config`'s counts, no cut.
        build_metrics: `build_ranker`'s own metrics.
    """

    run: SplitRun
    config: RankerConfig
    sources: dict[str, dict[int, ScoredList]]
    seen: dict[int, set[int]]
    ranker: Any
    features: pd.DataFrame
    build_metrics: dict[str, Any]

    def candidates(self, cand: CandidateConfig) -> dict[int, list[Candidate]]:
        """Every user's merged candidates with `cand`'s counts, weights and cut.

        Raises:
            ValueError: `cand` asks a source for more than the setup holds features for.
        """
        from models.ranking.candidates import build_candidates

        wider = {s: n for s, n in cand.counts.items() if n > self.config.candidates.counts[s]}
        if wider:
            raise ValueError(f"counts above the setup's ({self.config.candidates.counts}): {wider}")
        return build_candidates(self.run.users, self.sources, self.seen, cand)

    def rank(self, candidates: Mapping[int, Sequence[Candidate]]) -> dict[int, list[int]]:
        """User -> the candidates' movie ids in the ranker's order."""
        from models.ranking.scoring import rank_candidates

        return rank_candidates(self.ranker.score, self.ranker.spec, candidates, self.features)[0]


def split_sources(run: SplitRun, cand: CandidateConfig, itemcf: Mapping[str, Any]) -> Any:
    """Source name -> user -> list, each at least `cand`'s count (and `run.k`) long."""
    from models.ranking.build import exact_content_lists, itemcf_config

    retrieved = run.retrieval_lists(max(cand.retrieval_n, run.k))
    related = run.itemcf_lists(max(cand.itemcf_n, run.k), itemcf_config(None, itemcf))
    content = exact_content_lists(run.content_dir, run.train, cand)
    return {RETRIEVAL: retrieved, CONTENT: content, ITEMCF: related}


@contextlib.contextmanager
def trained_ranker(
    run: SplitRun,
    config: RankerConfig,
    sources: Mapping[str, dict[int, ScoredList]] | None = None,
) -> Iterator[RankedSetup]:
    """Builds a ranker on `run.train` with `config` (in a temporary directory, removed on
    exit) and yields it with the split's sources and features (see `RankedSetup`).

    Args:
        run: The split.
        config: The ranker's configuration (its candidates make its training lists).
        sources: The sources' lists when already made (`split_sources`); None makes them.
    """
    from models.features import build_feature_tables, write_sources
    from models.ranking.build import build_ranker
    from models.ranking.candidates import build_candidates
    from models.ranking.features import features_as_of, latest_snapshot, offline_store
    from models.ranking.runtime import load_ranker

    cand = config.candidates
    made = dict(sources) if sources is not None else split_sources(run, cand, config.itemcf)
    seen = items_by_user(run.train)
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
        store = offline_store(features_dir, work / "registry")
        uncut = replace(cand, max_ranked=max(cand.union, 1))
        table = pd.DataFrame(
            [
                (u, c.movie_id)
                for u, items in build_candidates(run.users, made, seen, uncut).items()
                for c in items
            ],
            columns=["user_id", "movie_id"],
        )
        yield RankedSetup(
            run=run,
            config=config,
            sources=made,
            seen=seen,
            ranker=load_ranker(work / "ranking"),
            features=features_as_of(store, table, latest_snapshot(features_dir)),
            build_metrics=build_metrics,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def ranked_run(run: SplitRun, config: RankerConfig, *, ablate: bool = True) -> dict[str, Any]:
    """Builds a ranker on `run.train` with `config` and measures every system on `run.test`.

    Returns:
        {"systems": {retrieval, itemcf, content, merged, ranked, popularity: metrics},
        "candidate_recall@max_ranked", "ablation" (when `ablate`), "ranker_build": the build's
        own metrics (its validation on held-out users of the train part)}.
    """
    cand = config.candidates
    with trained_ranker(run, config) as setup:
        users, sources = run.users, setup.sources
        candidates = setup.candidates(cand)
        lists = {
            "popularity": popularity_recommendations(run.train, users, run.k),
            "retrieval": {u: [m for m, _ in sources[RETRIEVAL][u]] for u in users},
            "itemcf": {u: [m for m, _ in sources[ITEMCF].get(u, [])] for u in users},
            "content": {u: [m for m, _ in sources[CONTENT].get(u, [])] for u in users},
            "merged": ranked_ids(candidates),
            "ranked": setup.rank(candidates),
        }
        out: dict[str, Any] = {
            "systems": {name: run.metrics(values) for name, values in lists.items()},
            f"candidate_recall@{cand.max_ranked}": candidate_recall(
                lists["merged"], run.relevant, cand.max_ranked
            ),
            "ranker_build": {
                key: setup.build_metrics.get(key)
                for key in ("rows", "positives", "validation", "seconds")
            },
        }
        if ablate:
            out["ablation"] = ablation(
                users, sources, setup.seen, cand, setup.rank, run.relevant, run.k
            )
        return out
