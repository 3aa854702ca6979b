"""Ranks candidate lists with a ranker: features in, re-ordered movie ids out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from models.ranking.candidates import candidate_table
from models.ranking.dataset import InputRows, build_input_rows
from movierec.candidates import Candidate
from movierec.ranking_inputs import RankerSpec

Scorer = Callable[[dict[str, np.ndarray]], np.ndarray]


def input_rows_for(
    spec: RankerSpec,
    candidates: Mapping[int, Sequence[Candidate]],
    features: pd.DataFrame,
) -> InputRows:
    """Input arrays of every candidate, features joined on (user_id, movie_id).

    Args:
        spec: The ranker's input spec.
        candidates: User -> merged candidates.
        features: One row per (user_id, movie_id) with the Feast feature columns (as
            `features_as_of` returns them); candidates without a row get the defaults.
    """
    table = candidate_table(candidates)
    columns = [c for c in features.columns if c not in ("timestamp",)]
    joined = table.merge(
        features[columns].drop_duplicates(["user_id", "movie_id"]),
        on=["user_id", "movie_id"],
        how="left",
    )
    return build_input_rows(
        spec, joined.drop(columns=["event_timestamp"], errors="ignore"), candidates
    )


def rank_lists(rows: InputRows, scores: np.ndarray) -> dict[int, list[int]]:
    """User -> movie ids by score descending (ties: merged order)."""
    frame = rows.frame[["user_id", "movie_id", "position"]].assign(score=scores)
    frame = frame.sort_values(
        ["user_id", "score", "position"], ascending=[True, False, True], kind="mergesort"
    )
    users = frame["user_id"].to_numpy(np.int64)
    movies = frame["movie_id"].to_numpy(np.int64)
    out: dict[int, list[int]] = {}
    for user, movie in zip(users.tolist(), movies.tolist(), strict=True):
        out.setdefault(user, []).append(movie)
    return out


def rank_candidates(
    scorer: Scorer,
    spec: RankerSpec,
    candidates: Mapping[int, Sequence[Candidate]],
    features: pd.DataFrame,
) -> tuple[dict[int, list[int]], InputRows, np.ndarray]:
    """Scores every candidate and re-orders each user's list.

    Returns:
        (user -> ranked movie ids, the input rows, their scores).
    """
    rows = input_rows_for(spec, candidates, features)
    scores = scorer(rows.arrays)
    return rank_lists(rows, scores), rows, scores
