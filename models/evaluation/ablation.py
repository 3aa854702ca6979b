"""Does every candidate source earn its place? Ranked output without each source.

The same ranker ranks the candidates made without one source's list (what serving does when
that source fails or is switched off by its count). A source earns its place when the
ranked output with it is at least as good as without it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from models.metrics.ranking import ranking_metrics
from models.ranking.candidates import ScoredList, build_candidates
from models.ranking.config import CandidateConfig
from movierec.candidates import Candidate

Ranker = Callable[[Mapping[int, Sequence[Candidate]]], Mapping[int, Sequence[int]]]
"""Candidates in, user -> ranked movie ids out."""


def itemcf_source_lists(
    itemcf_dir: Path, users: Sequence[int], config: CandidateConfig
) -> dict[int, ScoredList]:
    """The item-to-item source's lists as the Retrieval deployment serves them (none when
    the tree has no such source or `itemcf_n` is 0)."""
    from models.itemcf.runtime import METADATA_FILE, ItemCFRuntime

    if config.itemcf_n == 0 or not (Path(itemcf_dir) / METADATA_FILE).exists():
        return {}
    runtime = ItemCFRuntime.load(itemcf_dir)
    tops = runtime.top_k(users, config.itemcf_n)
    return {
        int(u): list(zip(ids.tolist(), scores.tolist(), strict=True))
        for u, (ids, scores) in zip(users, tops, strict=True)
    }


def ablation(
    users: Sequence[int],
    sources: Mapping[str, Mapping[int, ScoredList]],
    seen: Mapping[int, Collection[int]],
    config: CandidateConfig,
    rank: Ranker,
    relevant: Mapping[int, Collection[int]],
    k: int,
) -> dict[str, Any]:
    """nDCG@k (and the other metrics) of the ranked output with all sources and without
    each source that contributes candidates, and what each source adds.

    Returns:
        {"all": metrics, "without": {source: metrics}, "gain_ndcg@k": {source: all - without},
        "every_source_earns_its_place": bool}.
    """
    key = f"ndcg@{k}"

    def metrics(candidates: Mapping[int, Sequence[Candidate]]) -> dict[str, float]:
        from models.evaluation.report import metrics_dict

        return metrics_dict(ranking_metrics(rank(candidates), relevant, k))

    everything = metrics(build_candidates(users, sources, seen, config))
    used = [name for name, n in config.counts.items() if n > 0 and sources.get(name)]
    without = {
        name: metrics(
            build_candidates(users, {s: v for s, v in sources.items() if s != name}, seen, config)
        )
        for name in used
        if len(used) > 1
    }
    gains = {name: everything[key] - values[key] for name, values in without.items()}
    return {
        "method": "the same ranker; the source's candidates left out (as when it fails)",
        "all": everything,
        "without": without,
        f"gain_{key}": gains,
        "every_source_earns_its_place": all(g >= 0 for g in gains.values()),
    }
