"""Binary-relevance top-k ranking metrics, as defined by Microsoft Recommenders.

Inputs are two mappings keyed by user id:

* `recommended[u]`: u's ranked list (best first) of distinct item ids. Only the first k count.
* `relevant[u]`: the set of u's relevant items (in our protocol: every test-set rating).

Every metric is averaged over the users with at least one relevant item. This matches
`recommenders.evaluation.python_evaluation` (which averages over the users present in both the
truth and the predictions) whenever every such user has a list, as in our protocol; a user
with relevant items but no list counts as 0 here instead of being dropped.

Per user, with hits h_1 < h_2 < ... the 1-based ranks (<= k) of relevant recommended items
and n = |relevant[u]|:

* precision@k = |hits| / k   (k, not the list length: short lists are penalized, as in MSR)
* recall@k    = |hits| / n
* nDCG@k      = sum_j 1/log(1 + h_j) / sum_{i=1..min(n, k)} 1/log(1 + i)
* AP@k        = sum_j (j / h_j) / min(n, k)   (MAP@k is its mean)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

MapDenominator = Literal["min_k", "relevant"]


@dataclass(frozen=True)
class RankingMetrics:
    """The four metrics at one k, averaged over `users` users."""

    k: int
    precision: float
    recall: float
    ndcg: float
    map: float
    users: int

    def as_dict(self) -> dict[str, float | int]:
        """Returns {"k", "precision", "recall", "ndcg", "map", "users"}."""
        return asdict(self)


def _hit_ranks(ranked: Sequence[int], relevant: Collection[int], k: int) -> list[int]:
    top = list(ranked[:k])
    if len(set(top)) != len(top):
        raise ValueError("recommendation lists must not repeat an item")
    return [rank for rank, item in enumerate(top, start=1) if item in relevant]


def _user_scores(
    ranked: Sequence[int], relevant: Collection[int], k: int, map_denominator: MapDenominator
) -> tuple[float, float, float, float]:
    hits = _hit_ranks(ranked, relevant, k)
    n = len(relevant)
    precision = len(hits) / k
    recall = len(hits) / n
    dcg = sum(1.0 / math.log(1 + rank) for rank in hits)
    idcg = sum(1.0 / math.log(1 + i) for i in range(1, min(n, k) + 1))
    ap_sum = sum(j / rank for j, rank in enumerate(hits, start=1))
    ap = ap_sum / (min(n, k) if map_denominator == "min_k" else n)
    return precision, recall, dcg / idcg, ap


def _evaluated_users(relevant: Mapping[int, Collection[int]]) -> Iterable[int]:
    return (user for user, items in relevant.items() if len(items) > 0)


def ranking_metrics(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int = 10,
    map_denominator: MapDenominator = "min_k",
) -> RankingMetrics:
    """Computes precision@k, recall@k, nDCG@k and MAP@k in one pass.

    Args:
        recommended: User -> ranked distinct item ids (best first); may be longer than k.
        relevant: User -> relevant item ids. Users with none are skipped.
        k: Cut-off.
        map_denominator: "min_k" divides each user's precision sum by min(n_relevant, k), the
            current MS Recommenders `map_at_k` (and Spark's `meanAveragePrecisionAt`): a
            perfect top-k list scores 1 even when the user has more than k relevant items.
            "relevant" divides by n_relevant, as MS Recommenders' `map_at_k` did before it was
            fixed (it is still their `map`); the MAP column of their published ml-100k
            benchmark tables was computed this way, so use it to compare with those numbers.

    Returns:
        The metrics averaged over the users with at least one relevant item (0.0 if none).

    Raises:
        ValueError: If k < 1, a list repeats an item, or map_denominator is unknown.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    if map_denominator not in ("min_k", "relevant"):
        raise ValueError(f"unknown map_denominator {map_denominator!r}")
    totals = [0.0, 0.0, 0.0, 0.0]
    users = 0
    for user in _evaluated_users(relevant):
        items = relevant[user]
        items = items if isinstance(items, set | frozenset) else set(items)
        scores = _user_scores(recommended.get(user, ()), items, k, map_denominator)
        for i, value in enumerate(scores):
            totals[i] += value
        users += 1
    if users == 0:
        return RankingMetrics(k=k, precision=0.0, recall=0.0, ndcg=0.0, map=0.0, users=0)
    p, r, n, m = (t / users for t in totals)
    return RankingMetrics(k=k, precision=p, recall=r, ndcg=n, map=m, users=users)


def ndcg_per_user(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int = 10,
) -> dict[int, float]:
    """User -> nDCG@k, for the users `ranking_metrics` averages over (its mean is their
    `ndcg`); e.g. for a paired bootstrap of the difference between two systems."""
    if k < 1:
        raise ValueError("k must be >= 1")
    out: dict[int, float] = {}
    for user in _evaluated_users(relevant):
        items = relevant[user]
        items = items if isinstance(items, set | frozenset) else set(items)
        out[user] = _user_scores(recommended.get(user, ()), items, k, "min_k")[2]
    return out


def precision_at_k(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int = 10,
) -> float:
    """Mean over users of |relevant items in the top k| / k. See `ranking_metrics`."""
    return ranking_metrics(recommended, relevant, k).precision


def recall_at_k(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int = 10,
) -> float:
    """Mean over users of |relevant items in the top k| / |relevant|. See `ranking_metrics`."""
    return ranking_metrics(recommended, relevant, k).recall


def ndcg_at_k(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int = 10,
) -> float:
    """Mean over users of DCG@k / ideal DCG@k with binary gains. See `ranking_metrics`."""
    return ranking_metrics(recommended, relevant, k).ndcg


def map_at_k(
    recommended: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int = 10,
    map_denominator: MapDenominator = "min_k",
) -> float:
    """Mean average precision at k. See `ranking_metrics` for the denominator choice."""
    return ranking_metrics(recommended, relevant, k, map_denominator).map
