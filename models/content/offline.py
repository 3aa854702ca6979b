"""Offline content-alone recommender: each user's top-liked movies as seeds, nearest unseen movies.

Runs the served path for real (the content runtime against Redis, pipelined across users), so
its offline metrics describe what the Content deployment returns. `exact_recommendations`
is the same recommender on an in-memory `ExactIndex`, for quick sweeps and HNSW-recall checks.

Recommendation table (both functions)
    user_id  int64
    rank     int64    1..k
    movie_id int64
    score    float64  Seed-aggregated cosine similarity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from models.content.client import RedisTransport, VectorSearch
from models.content.exact import ExactIndex
from models.content.query import Aggregation, ScoredMovie
from models.content.runtime import ContentRuntime

RECOMMENDATION_COLUMNS = ("user_id", "rank", "movie_id", "score")


@dataclass(frozen=True)
class SeedPolicy:
    """How a user's seed movies are chosen from their training ratings.

    Attributes:
        n_seeds: Seeds per user.
        order: "rating": highest rating first, then most recent; "recency": most recent first.
        min_rating: Only ratings >= this are candidates; a user with none falls back to all
            of their ratings. None: no threshold.
        weighting: Seed weights: "uniform" (all 1) or "rating" (the rating itself).
    """

    n_seeds: int = 5
    order: Literal["rating", "recency"] = "rating"
    min_rating: float | None = None
    weighting: Literal["uniform", "rating"] = "uniform"


SeedSelector = Callable[[pd.DataFrame], pd.DataFrame]
"""ratings -> seeds table (user_id, movie_id, weight), seeds of a user in priority order."""


def select_seeds(ratings: pd.DataFrame, policy: SeedPolicy | None = None) -> pd.DataFrame:
    """Picks each user's seed movies.

    Deterministic: ties in (rating, timestamp) are broken by the smaller movie_id.

    Args:
        ratings: Training ratings (user_id, movie_id, rating, timestamp).
        policy: Seed policy; defaults to top 5 by rating, then recency, unweighted.

    Returns:
        DataFrame (user_id int64, movie_id int64, weight float64), at most `n_seeds` rows per
        user, in priority order.
    """
    policy = policy or SeedPolicy()
    frame = ratings[["user_id", "movie_id", "rating", "timestamp"]]
    if policy.min_rating is not None:
        liked = frame["rating"] >= policy.min_rating
        has_liked = liked.groupby(frame["user_id"]).transform("any")
        frame = frame[liked | ~has_liked]
    if policy.order == "rating":
        keys, ascending = ["user_id", "rating", "timestamp", "movie_id"], [True, False, False, True]
    elif policy.order == "recency":
        keys, ascending = ["user_id", "timestamp", "rating", "movie_id"], [True, False, False, True]
    else:
        raise ValueError(f"unknown seed order {policy.order!r}")
    chosen = frame.sort_values(keys, ascending=ascending, kind="mergesort")
    chosen = chosen.groupby("user_id", sort=False).head(policy.n_seeds)
    weight = (
        chosen["rating"].astype("float64")
        if policy.weighting == "rating"
        else pd.Series(1.0, index=chosen.index)
    )
    return pd.DataFrame(
        {
            "user_id": chosen["user_id"].astype("int64").to_numpy(),
            "movie_id": chosen["movie_id"].astype("int64").to_numpy(),
            "weight": weight.to_numpy(dtype=np.float64),
        }
    )


def _user_requests(
    train: pd.DataFrame, seeds: pd.DataFrame
) -> list[tuple[int, list[int], list[float], set[int]]]:
    seen: dict[int, set[int]] = {}
    for user_id, movie_id in zip(
        train["user_id"].to_numpy(dtype=np.int64).tolist(),
        train["movie_id"].to_numpy(dtype=np.int64).tolist(),
        strict=True,
    ):
        seen.setdefault(user_id, set()).add(movie_id)
    per_user: dict[int, tuple[list[int], list[float]]] = {}
    for user_id, movie_id, weight in zip(
        seeds["user_id"].to_numpy(dtype=np.int64).tolist(),
        seeds["movie_id"].to_numpy(dtype=np.int64).tolist(),
        seeds["weight"].to_numpy(dtype=np.float64).tolist(),
        strict=True,
    ):
        ids, weights = per_user.setdefault(user_id, ([], []))
        ids.append(movie_id)
        weights.append(weight)
    return [
        (user_id, ids, weights, seen.get(user_id, set()))
        for user_id, (ids, weights) in sorted(per_user.items())
    ]


def content_recommendations(
    transport: RedisTransport,
    search: VectorSearch,
    train: pd.DataFrame,
    k: int = 10,
    *,
    seeds: pd.DataFrame | None = None,
    policy: SeedPolicy | None = None,
    aggregation: Aggregation = "max",
    batch_users: int = 128,
) -> pd.DataFrame:
    """Top-k content recommendations for every training user, served through Redis.

    Seeds come from `seeds` or else `select_seeds(train, policy)`; every movie the user rated
    in `train` is excluded. Users are processed `batch_users` at a time, each batch costing
    two pipelined round trips (seed vectors, then KNNs).

    Args:
        transport: Runs the queries on the Redis holding the index.
        search: The queries on the live index alias.
        train: Training ratings (user_id, movie_id, rating, timestamp).
        k: Recommendations per user.
        seeds: Precomputed seeds table (user_id, movie_id, weight), or None.
        policy: Seed policy when `seeds` is None.
        aggregation: "max" or "sum" (see `VectorSearch.recommend_for_seeds`).
        batch_users: Users per lockstep batch.

    Returns:
        Recommendation table (see module docstring).
    """
    seeds = select_seeds(train, policy) if seeds is None else seeds
    runtime = ContentRuntime(search, aggregation)
    requests = _user_requests(train, seeds)
    results: list[tuple[int, list[ScoredMovie]]] = []
    for start in range(0, len(requests), batch_users):
        batch = requests[start : start + batch_users]
        lists = transport.run_many(
            [
                runtime.recommend(seed_ids, seen, k, seed_weights=weights)
                for _, seed_ids, weights, seen in batch
            ]
        )
        results += [(user_id, hits) for (user_id, *_), hits in zip(batch, lists, strict=True)]
    return _table((user_id, [(h.movie_id, h.score) for h in hits]) for user_id, hits in results)


def exact_recommendations(
    index: ExactIndex,
    train: pd.DataFrame,
    k: int = 10,
    *,
    seeds: pd.DataFrame | None = None,
    policy: SeedPolicy | None = None,
    aggregation: Aggregation = "max",
) -> pd.DataFrame:
    """Same as `content_recommendations`, computed exactly in numpy (no Redis)."""
    seeds = select_seeds(train, policy) if seeds is None else seeds
    return _table(
        (
            user_id,
            index.recommend_for_seeds(seed_ids, k, seen, weights, aggregation=aggregation),
        )
        for user_id, seed_ids, weights, seen in _user_requests(train, seeds)
    )


def _table(rows: Iterable[tuple[int, list[tuple[int, float]]]]) -> pd.DataFrame:
    users, ranks, movies, scores = [], [], [], []
    for user_id, hits in rows:
        for rank, (movie_id, score) in enumerate(hits, start=1):
            users.append(user_id)
            ranks.append(rank)
            movies.append(movie_id)
            scores.append(score)
    return pd.DataFrame(
        {
            "user_id": np.asarray(users, dtype=np.int64),
            "rank": np.asarray(ranks, dtype=np.int64),
            "movie_id": np.asarray(movies, dtype=np.int64),
            "score": np.asarray(scores, dtype=np.float64),
        }
    )
