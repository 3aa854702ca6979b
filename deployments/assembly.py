"""Candidate assembly: the sources' lists in, the candidates the ranker scores out.

Pure (no I/O): merge the sources (weighted reciprocal-rank fusion, `movierec.candidates`),
filter with the catalog (seen, the request's exclude, genres and years), fill a short list with
popular movies, keep the best `max_ranked`, and lay them out for the ranker (`RankQuery`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from deployments.catalog import Catalog
from deployments.request import RecommendRequest
from movierec.candidates import Candidate, merge_candidates
from movierec.payloads import RankQuery, ScoredMovies, UserProfile
from movierec.ranking_inputs import candidate_columns
from movierec.rules import filter_items
from movierec.stages import CONTENT, ITEMCF, POPULAR, RETRIEVAL, SOURCES

SourceList = list[tuple[int, float]]
"""(movie_id, score), best first."""


def source_lists(
    retrieved: ScoredMovies | None,
    content: ScoredMovies | None,
    seen: frozenset[int],
    popular: SourceList,
    itemcf: ScoredMovies | None = None,
) -> dict[str, SourceList]:
    """The candidate lists to merge.

    Args:
        retrieved: Retrieval's answer (None: it failed or was not asked).
        content: The content source's answer, already without seen movies (None: failed).
        seen: The user's seen movies (dropped from retrieval's list).
        popular: The popular list, merged in when a source failed or nothing was proposed.
        itemcf: The item-to-item source's answer, already without the movies it knows the
            user saw (None: it failed; empty: not asked).
    """
    lists: dict[str, SourceList] = {}
    if retrieved is not None:
        lists[RETRIEVAL] = [(m, s) for m, s in retrieved.pairs() if m not in seen]
    if content is not None and len(content):
        lists[CONTENT] = list(content.pairs())
    if itemcf is not None and len(itemcf):
        lists[ITEMCF] = [(m, s) for m, s in itemcf.pairs() if m not in seen]
    if retrieved is None or content is None or not lists:
        lists[POPULAR] = popular
    return lists


def select_candidates(
    catalog: Catalog,
    lists: Mapping[str, SourceList],
    weights: Mapping[str, float],
    seen: frozenset[int],
    request: RecommendRequest,
    max_ranked: int,
) -> tuple[list[Candidate], list[Candidate]]:
    """Merges, filters, fills and cuts.

    Returns:
        (the merged candidates before filtering, the at most `max_ranked` candidates to rank:
        filtered, best merged first, filled with popular movies up to `request.k`).
    """
    merged = merge_candidates(lists, weights)
    allowed = request.allowed
    genres = allowed.genres or None
    items = [catalog.item(c.movie_id, c.merged_score) for c in merged if c.movie_id in catalog]
    kept_ids = {
        i.movie_id for i in filter_items(items, seen, allowed.exclude, genres, allowed.year_range)
    }
    kept = [c for c in merged if c.movie_id in kept_ids]
    if len(kept) < request.k:
        kept = _fill_popular(catalog, kept, request, seen)
    return merged, kept[:max_ranked]


def _fill_popular(
    catalog: Catalog, candidates: list[Candidate], request: RecommendRequest, seen: frozenset[int]
) -> list[Candidate]:
    """Appends popular movies passing the filters until there are `request.k` candidates."""
    have = {c.movie_id for c in candidates}
    allowed = request.allowed
    extra = catalog.popular_items(
        request.k + len(have),
        seen=seen | have,
        exclude=allowed.exclude,
        genres=allowed.genres or None,
        year_range=allowed.year_range,
    )
    floor = min((c.merged_score for c in candidates), default=1.0)
    out = list(candidates)
    for rank, item in enumerate(extra[: request.k - len(out)], start=1):
        filler = Candidate(item.movie_id)
        filler.source_scores[POPULAR] = item.score
        filler.source_ranks[POPULAR] = rank
        filler.merged_score = floor * 0.5 / rank  # below every real candidate
        out.append(filler)
    return out


def rank_query(profile: UserProfile, candidates: Sequence[Candidate]) -> RankQuery:
    """The ranker's view of the candidates: ids [N] and candidate columns [N] float64 (NaN
    where a source did not propose the movie: the ranker input's default then)."""
    columns = candidate_columns(
        [c.source_scores for c in candidates],
        [c.source_ranks for c in candidates],
        [c.merged_score for c in candidates],
        SOURCES,
    )
    return RankQuery(
        user_id=profile.user_id,
        user=profile.features,
        movie_ids=np.fromiter((c.movie_id for c in candidates), np.int64, len(candidates)),
        candidates={
            name: np.asarray([np.nan if v is None else v for v in values], np.float64)
            for name, values in columns.items()
        },
    )
