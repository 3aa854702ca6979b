"""Merging candidate lists from several sources into one deduplicated list.

Pure logic, shared by the online Controller and the offline evaluation of the merged set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Reciprocal-rank-fusion constant: ranks, not raw scores, are comparable across sources.
RRF_K = 60.0


@dataclass
class Candidate:
    """One movie proposed by one or more sources.

    Attributes:
        movie_id: MovieLens movie id.
        source_scores: Source name -> that source's own score (cosine or dot product).
        source_ranks: Source name -> 1-based rank within that source's list.
        merged_score: Reciprocal-rank-fusion score over the sources; higher is better.
    """

    movie_id: int
    source_scores: dict[str, float] = field(default_factory=dict)
    source_ranks: dict[str, int] = field(default_factory=dict)
    merged_score: float = 0.0

    @property
    def sources(self) -> list[str]:
        """Names of the sources that proposed this movie, in merge order."""
        return list(self.source_scores)


def merge_candidates(
    lists: Mapping[str, Sequence[tuple[int, float]]],
    weights: Mapping[str, float] | None = None,
) -> list[Candidate]:
    """Merges per-source candidate lists, deduplicating by movie id.

    Each source list must be ordered best first. The merged score is a weighted
    reciprocal-rank fusion, `sum_s w_s / (RRF_K + rank_s)`, so sources whose scores live on
    different scales still combine sensibly.

    Args:
        lists: Source name -> [(movie_id, score)], best first. Duplicates inside one list
            keep their first (best) occurrence.
        weights: Source name -> fusion weight; sources not named get 1.0.

    Returns:
        Candidates sorted by merged score, best first; ties broken by movie id.
    """
    weights = weights or {}
    merged: dict[int, Candidate] = {}
    for source, items in lists.items():
        weight = weights.get(source, 1.0)
        rank = 0
        for movie_id, score in items:
            candidate = merged.setdefault(int(movie_id), Candidate(int(movie_id)))
            if source in candidate.source_scores:
                continue
            rank += 1
            candidate.source_scores[source] = float(score)
            candidate.source_ranks[source] = rank
            candidate.merged_score += weight / (RRF_K + rank)
    return sorted(merged.values(), key=lambda c: (-c.merged_score, c.movie_id))
