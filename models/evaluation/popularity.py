"""Most-popular baseline: the movies with the most training ratings, seen ones removed."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from models.metrics.protocol import items_by_user, remove_seen


def popularity_ranking(train: pd.DataFrame) -> np.ndarray:
    """Returns every training movie id, by training rating count desc (ties: smaller id first)."""
    counts = train.groupby("movie_id").size()
    order = np.lexsort((counts.index.to_numpy(), -counts.to_numpy()))
    return counts.index.to_numpy(dtype=np.int64)[order]


def popularity_recommendations(
    train: pd.DataFrame, users: Iterable[int], k: int = 10
) -> dict[int, list[int]]:
    """Recommends each user the k most-rated training movies they have not rated in training.

    Args:
        train: Training ratings (user_id, movie_id, ...).
        users: Users to recommend for (unknown users get the plain top k).
        k: List length.

    Returns:
        {user_id: k movie ids, most popular first}.
    """
    ranking = popularity_ranking(train)
    seen = items_by_user(train)
    return {int(user): remove_seen(ranking, seen.get(int(user), set()), k) for user in users}
