"""The offline evaluation protocol shared by every stage of the recommender.

Protocol (the one behind the MS Recommenders ml-100k benchmark numbers): per-user stratified
75/25 random split (seed 42), items a user rated in training are removed from that user's
list, k = 10, and every test rating is relevant regardless of its value.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from models.metrics.ranking import MapDenominator, RankingMetrics, ranking_metrics


def items_by_user(ratings: pd.DataFrame) -> dict[int, set[int]]:
    """Groups a ratings table into {user_id: set of movie_ids}."""
    out: dict[int, set[int]] = {}
    users = ratings["user_id"].to_numpy(dtype=np.int64)
    movies = ratings["movie_id"].to_numpy(dtype=np.int64)
    for user, movie in zip(users.tolist(), movies.tolist(), strict=True):
        out.setdefault(user, set()).add(movie)
    return out


def remove_seen(ranked: Iterable[int], seen: Collection[int], k: int | None = None) -> list[int]:
    """Drops the items of `seen` from a ranked list, keeping order, then keeps the first k."""
    out = [int(item) for item in ranked if item not in seen]
    return out if k is None else out[:k]


def top_k_unseen(
    scores: np.ndarray,
    item_ids: np.ndarray,
    users: Sequence[int],
    seen: Mapping[int, Collection[int]],
    k: int,
) -> dict[int, list[int]]:
    """Ranks every item for every user from a dense score matrix, excluding seen items.

    Args:
        scores: [U, N] scores, row i for `users[i]`, column j for `item_ids[j]`.
        item_ids: [N] item ids.
        users: U user ids.
        seen: User -> items to exclude (their training items).
        k: List length.

    Returns:
        {user: top-k unseen item ids, best first}. Ties are broken by column order.
    """
    scores = np.array(scores, dtype=np.float64, copy=True)
    column = pd.Index(item_ids)
    for row, user in enumerate(users):
        excluded = column.get_indexer(list(seen.get(user, ())))
        scores[row, excluded[excluded >= 0]] = -np.inf
    take = min(k, scores.shape[1])
    part = np.argpartition(-scores, take - 1, axis=1)[:, :take]
    out: dict[int, list[int]] = {}
    for row, user in enumerate(users):
        cols = part[row]
        cols = cols[np.lexsort((cols, -scores[row, cols]))]
        cols = cols[np.isfinite(scores[row, cols])]
        out[int(user)] = [int(i) for i in item_ids[cols]]
    return out


def candidate_recall(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int,
) -> float:
    """Fraction of all relevant (user, item) pairs found in the users' top-k lists.

    A micro average (pooled over pairs, unlike `recall@k`, which averages per user): the share
    of test interactions a downstream ranker could still put in front of the user.
    """
    found = total = 0
    for user, items in relevant.items():
        top = set(recommended.get(user, ())[:k])
        found += sum(1 for item in items if item in top)
        total += len(items)
    return found / total if total else 0.0


def evaluate_recommendations(
    recommended: Mapping[int, Sequence[int]],
    test: pd.DataFrame,
    train: pd.DataFrame | None = None,
    k: int = 10,
    map_denominator: MapDenominator = "min_k",
) -> RankingMetrics:
    """Scores ranked lists against the test split under the protocol.

    Args:
        recommended: User -> ranked item ids, best first (may be longer than k).
        test: Test ratings (user_id, movie_id, ...); all of them are relevant.
        train: Training ratings; when given, each user's training items are removed from the
            lists before cutting at k (pass None if the lists are already filtered).
        k: Cut-off.
        map_denominator: See `ranking_metrics`.

    Returns:
        The metrics over the users with at least one test rating.
    """
    relevant = items_by_user(test)
    if train is not None:
        seen = items_by_user(train)
        recommended = {
            user: remove_seen(items, seen.get(user, set())) for user, items in recommended.items()
        }
    return ranking_metrics(recommended, relevant, k, map_denominator)


def evaluation_report(
    recommended: Mapping[int, Sequence[int]],
    test: pd.DataFrame,
    train: pd.DataFrame | None = None,
    k: int = 10,
    candidate_ks: Sequence[int] = (100, 300),
) -> dict[str, float]:
    """The protocol's numbers for one system, as a flat dict (for tables and JSON).

    Args:
        recommended: User -> ranked item ids, best first; long lists (e.g. a retrieval
            stage's top 500) also give the candidate recalls.
        test: Test ratings; all relevant.
        train: Training ratings, removed from each user's list first (None: already done).
        k: Cut-off of the ranking metrics.
        candidate_ks: Cut-offs of `candidate_recall`.

    Returns:
        {"ndcg@k", "precision@k", "recall@k", "map@k", "map_legacy@k", "candidate_recall@c"
        for c in candidate_ks, "users"}; "map_legacy" divides by n_relevant (see
        `ranking_metrics`).
    """
    relevant = items_by_user(test)
    if train is not None:
        seen = items_by_user(train)
        recommended = {
            user: remove_seen(items, seen.get(user, set())) for user, items in recommended.items()
        }
    metrics = ranking_metrics(recommended, relevant, k)
    legacy = ranking_metrics(recommended, relevant, k, map_denominator="relevant")
    report = {
        f"ndcg@{k}": metrics.ndcg,
        f"precision@{k}": metrics.precision,
        f"recall@{k}": metrics.recall,
        f"map@{k}": metrics.map,
        f"map_legacy@{k}": legacy.map,
    }
    for cutoff in candidate_ks:
        report[f"candidate_recall@{cutoff}"] = candidate_recall(recommended, relevant, cutoff)
    report["users"] = float(metrics.users)
    return report
