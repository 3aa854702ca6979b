"""Training and scoring rows: labels, point-in-time Feast features, input arrays.

Leakage control. The retrieval model memorizes its training positives, so the ranker is not
trained on candidates of a model that saw the labels: each user's TRAINING ratings are split
again (`split_fit_label`) into a fit part, which trains a separate retrieval model and seeds
vector search, and a label part, whose movies are the positives among that model's
candidates (fit-part movies removed, as seen ones are at serving).

Timestamps. A positive is stamped with its rating's time; a negative with a time drawn from
the same user's label-part ratings. Features come from Feast's point-in-time join at that
time: only snapshots computed from ratings strictly before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.data import stratified_split
from models.ranking.inputs import ranker_inputs
from movierec.candidates import Candidate
from movierec.ranking_inputs import RankerSpec

EVENT_TIMESTAMP = "event_timestamp"
KEYS = ("user_id", "movie_id")


def split_fit_label(
    train: pd.DataFrame, label_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Splits each user's training ratings at random into (fit, label) parts.

    The same per-user stratified splitter as the evaluation protocol; every user keeps at
    least one fit rating.
    """
    return stratified_split(train, ratio=1.0 - label_fraction, seed=seed)


def labeled_rows(
    candidates: Mapping[int, Sequence[Candidate]], label: pd.DataFrame, seed: int
) -> pd.DataFrame:
    """One row per (user, candidate) with its label and the time its features are read at.

    Args:
        candidates: User -> merged candidate list (fit-part movies already excluded).
        label: Label-part ratings (user_id, movie_id, timestamp).
        seed: Seed of the negatives' timestamps.

    Returns:
        DataFrame user_id, movie_id, position (1-based merged rank), label (0/1), timestamp
        (int seconds): a positive's rating time, or for a negative one of the user's
        label-part rating times drawn at random. Users without label ratings are dropped.
    """
    stamps = label.groupby("user_id")["timestamp"].apply(lambda s: s.to_numpy(np.int64))
    rated = {
        (int(u), int(m)): int(t)
        for u, m, t in zip(
            label["user_id"].to_numpy(np.int64).tolist(),
            label["movie_id"].to_numpy(np.int64).tolist(),
            label["timestamp"].to_numpy(np.int64).tolist(),
            strict=True,
        )
    }
    rng = np.random.default_rng(seed)
    users: list[int] = []
    movies: list[int] = []
    positions: list[int] = []
    labels: list[int] = []
    times: list[int] = []
    for user, items in candidates.items():
        user = int(user)
        if user not in stamps.index or not items:
            continue
        draws = rng.choice(stamps[user], size=len(items))
        for position, candidate in enumerate(items, start=1):
            stamp = rated.get((user, candidate.movie_id))
            users.append(user)
            movies.append(candidate.movie_id)
            positions.append(position)
            labels.append(int(stamp is not None))
            times.append(stamp if stamp is not None else int(draws[position - 1]))
    return pd.DataFrame(
        {
            "user_id": np.asarray(users, dtype=np.int64),
            "movie_id": np.asarray(movies, dtype=np.int64),
            "position": np.asarray(positions, dtype=np.int64),
            "label": np.asarray(labels, dtype=np.int64),
            "timestamp": np.asarray(times, dtype=np.int64),
        }
    )


@dataclass
class InputRows:
    """Input arrays of many rows, aligned with the frame they were built from.

    Attributes:
        arrays: Input name -> [R] / [R, d] array (the SavedModel's inputs).
        frame: The rows, in array order (user_id, movie_id, position, ... as given).
    """

    arrays: dict[str, np.ndarray]
    frame: pd.DataFrame

    def take(self, index: np.ndarray) -> InputRows:
        """The rows at positional `index`."""
        return InputRows(
            {k: v[index] for k, v in self.arrays.items()},
            self.frame.iloc[index].reset_index(drop=True),
        )


def concat_rows(parts: Sequence[InputRows]) -> InputRows:
    """The rows of several `InputRows`, one after the other."""
    if len(parts) == 1:
        return parts[0]
    arrays = {name: np.concatenate([p.arrays[name] for p in parts]) for name in parts[0].arrays}
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return InputRows(arrays, frame)


def _value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def build_input_rows(
    spec: RankerSpec,
    frame: pd.DataFrame,
    candidates: Mapping[int, Sequence[Candidate]],
) -> InputRows:
    """Builds the input arrays with `ranker_inputs`, one call per (user, feature time) block.

    Rows of one user read at one time share their user features, exactly like one serving
    request, so each such block is built as the Ranking deployment builds a request.

    Args:
        spec: The ranker's input spec.
        frame: Rows with user_id, movie_id, event_timestamp and the Feast feature columns
            the spec reads (NaN/None where missing).
        candidates: User -> candidates; each row's `Candidate` is looked up by movie id.

    Returns:
        The arrays and the frame, both ordered by (user_id, event_timestamp, position).
    """
    sort_keys = [k for k in ("user_id", EVENT_TIMESTAMP, "position") if k in frame.columns]
    frame = frame.sort_values(sort_keys, kind="mergesort").reset_index(drop=True)
    by_movie = {int(user): {c.movie_id: c for c in items} for user, items in candidates.items()}
    user_names = spec.user_features
    movie_names = spec.movie_features
    user_cols = {n: frame[n].to_numpy(dtype=object) for n in user_names if n in frame}
    movie_cols = {n: frame[n].to_numpy(dtype=object) for n in movie_names if n in frame}
    user_ids = frame["user_id"].to_numpy(np.int64)
    movie_ids = frame["movie_id"].to_numpy(np.int64)
    group_keys = [user_ids]
    if EVENT_TIMESTAMP in frame.columns:
        group_keys.append(frame[EVENT_TIMESTAMP].to_numpy())
    change = np.zeros(len(frame), dtype=bool)
    if len(frame):
        change[0] = True
        for key in group_keys:
            change[1:] |= key[1:] != key[:-1]
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], len(frame))
    blocks: list[dict[str, np.ndarray]] = []
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        user = int(user_ids[lo])
        lookup = by_movie[user]
        block_candidates = [lookup[int(m)] for m in movie_ids[lo:hi]]
        user_row = {n: _value(col[lo]) for n, col in user_cols.items()}
        movie_rows = {n: [_value(v) for v in col[lo:hi]] for n, col in movie_cols.items()}
        blocks.append(ranker_inputs(spec, user, user_row, movie_rows, block_candidates))
    if not blocks:
        raise ValueError("no rows to build inputs for")
    arrays = {name: np.concatenate([b[name] for b in blocks], axis=0) for name in blocks[0]}
    return InputRows(arrays, frame)
