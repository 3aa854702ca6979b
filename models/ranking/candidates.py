"""Candidate lists exactly as the Controller makes them, for training and offline evaluation.

Per user: the retrieval model's top `retrieval_n` (seen movies dropped afterwards), the
vector search's top `content_n` unseen movies for the user's top-liked seeds, merged with
`movierec.candidates.merge_candidates` (weighted reciprocal-rank fusion, the same code the
Controller runs), seen movies filtered, the best `max_ranked` by merged score kept.

Pure numpy/pandas: the sources' raw lists come in as arguments (see `retrieval_lists`,
`content_lists`), so the training side (an in-memory fit-part retrieval model, an exact numpy
content) and the evaluation side (the exported SavedModel, Redis) share this merge.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from models.content.offline import SeedPolicy, select_seeds
from models.ranking.config import CandidateConfig
from movierec.candidates import Candidate, merge_candidates
from movierec.stages import CONTENT, ITEMCF, RETRIEVAL, SOURCES

__all__ = [
    "CONTENT",
    "ITEMCF",
    "RETRIEVAL",
    "SOURCES",
    "ScoredList",
    "build_candidates",
    "candidate_table",
    "content_lists",
    "liked_seeds",
    "merge_user",
    "ranked_ids",
    "retrieval_lists",
]

ScoredList = list[tuple[int, float]]


def liked_seeds(ratings: pd.DataFrame, n_seeds: int, like_threshold: float) -> pd.DataFrame:
    """Each user's vector-search seeds, as the Controller takes them from Feast.

    Feast's `liked_movie_ids` lists the movies rated >= `like_threshold`, best rated first,
    then most recent, then smaller movie id; the Controller uses its first `n_seeds`. A user
    with no such rating has no seeds (and no vector-search candidates).

    Returns:
        DataFrame (user_id, movie_id, weight=1.0), seeds of a user in priority order.
    """
    liked = ratings[ratings["rating"] >= like_threshold]
    return select_seeds(liked, SeedPolicy(n_seeds=n_seeds, order="rating", min_rating=None))


def retrieval_lists(
    users: Sequence[int],
    movie_ids: np.ndarray,
    scores: np.ndarray,
    seen: Mapping[int, Collection[int]],
) -> dict[int, ScoredList]:
    """Per-user retrieval lists with the user's seen movies dropped (order kept).

    Args:
        users: U user ids.
        movie_ids: [U, K] top-K movie ids, best first.
        scores: [U, K] their scores.
        seen: User -> movies to drop.
    """
    out: dict[int, ScoredList] = {}
    for row, user in enumerate(users):
        drop = seen.get(int(user), ())
        out[int(user)] = [
            (int(m), float(s))
            for m, s in zip(movie_ids[row].tolist(), scores[row].tolist(), strict=True)
            if m not in drop
        ]
    return out


def content_lists(table: pd.DataFrame) -> dict[int, ScoredList]:
    """Per-user lists from a recommendation table (user_id, rank, movie_id, score)."""
    ordered = table.sort_values(["user_id", "rank"], kind="mergesort")
    out: dict[int, ScoredList] = {}
    for user, movie, score in zip(
        ordered["user_id"].to_numpy(dtype=np.int64).tolist(),
        ordered["movie_id"].to_numpy(dtype=np.int64).tolist(),
        ordered["score"].to_numpy(dtype=np.float64).tolist(),
        strict=True,
    ):
        out.setdefault(user, []).append((movie, score))
    return out


def merge_user(
    lists: Mapping[str, ScoredList], seen: Collection[int], config: CandidateConfig
) -> list[Candidate]:
    """One user's ranked candidates: merged, seen filtered, cut to `max_ranked`."""
    present = {name: items for name, items in lists.items() if items}
    merged = merge_candidates(present, config.weights)
    return [c for c in merged if c.movie_id not in seen][: config.max_ranked]


def build_candidates(
    users: Iterable[int],
    sources: Mapping[str, Mapping[int, ScoredList]],
    seen: Mapping[int, Collection[int]],
    config: CandidateConfig,
) -> dict[int, list[Candidate]]:
    """Every user's merged candidate list (see `merge_user`).

    Args:
        users: Users to build lists for.
        sources: Source name -> user -> that source's list (seen already dropped), best
            first; each is cut to the source's count in `config` (a source missing here,
            or with count 0, contributes nothing: the ablation of that source).
        seen: User -> seen movies.
        config: Candidate settings (counts, fusion weights, `max_ranked`).
    """
    counts = config.counts
    out: dict[int, list[Candidate]] = {}
    for user in users:
        user = int(user)
        lists = {
            name: sources[name].get(user, [])[: counts[name]]
            for name in (RETRIEVAL, CONTENT, ITEMCF)
            if name in sources and counts[name] > 0
        }
        out[user] = merge_user(lists, seen.get(user, ()), config)
    return out


def candidate_table(candidates: Mapping[int, Sequence[Candidate]]) -> pd.DataFrame:
    """Long table of candidate lists: user_id, movie_id, position (1-based, merged order)."""
    users: list[int] = []
    movies: list[int] = []
    positions: list[int] = []
    for user, items in candidates.items():
        for position, candidate in enumerate(items, start=1):
            users.append(int(user))
            movies.append(candidate.movie_id)
            positions.append(position)
    return pd.DataFrame(
        {
            "user_id": np.asarray(users, dtype=np.int64),
            "movie_id": np.asarray(movies, dtype=np.int64),
            "position": np.asarray(positions, dtype=np.int64),
        }
    )


def ranked_ids(candidates: Mapping[int, Sequence[Candidate]]) -> dict[int, list[int]]:
    """User -> candidate movie ids in merged (reciprocal-rank-fusion) order."""
    return {int(u): [c.movie_id for c in items] for u, items in candidates.items()}
