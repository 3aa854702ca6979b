"""The item-to-item source at run time: neighbour matrix + user histories, in memory.

`ItemCFRuntime.candidates(user_id, n)` answers a user's top-n unseen movies by summed
similarity to the movies the user rated in the training data (sparse row x matrix product,
microseconds for ml-100k); `from_history(movie_ids, n)` does the same for a history given at
serve time (a user unknown to the training data, from the events they posted). Shared by the
offline evaluation, the ranker's training candidates and the Retrieval deployment (which
serves this source next to the two-tower model).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.itemcf.similarity import ItemCFConfig, interaction_matrix, item_neighbours
from movierec.payloads import ScoredMovies

NEIGHBOURS_FILE = "neighbours.npz"
MOVIES_FILE = "movies.npy"
HISTORY_FILE = "history.parquet"
METADATA_FILE = "itemcf.json"


class ItemCFRuntime:
    """A user's candidates from item-to-item similarities.

    Args:
        movie_ids: [M] movie id of each row/column of `neighbours`.
        neighbours: [M, M] CSR, row i: movie i's weight towards each movie.
        history: users x M binary CSR (the users' training interactions).
        users: [U] user id of each row of `history`.
        config: How `neighbours` was built (reported by `describe`).
    """

    def __init__(
        self,
        movie_ids: np.ndarray,
        neighbours: sp.csr_matrix,
        history: sp.csr_matrix,
        users: np.ndarray,
        config: ItemCFConfig,
    ) -> None:
        self.movie_ids = np.asarray(movie_ids, dtype=np.int64)
        self.neighbours = neighbours.tocsr()
        self.history = history.tocsr()
        self.config = config
        self._row = {int(u): i for i, u in enumerate(np.asarray(users).tolist())}

    @classmethod
    def fit(
        cls, ratings: pd.DataFrame, movie_ids: Sequence[int], config: ItemCFConfig
    ) -> ItemCFRuntime:
        """Builds the neighbours and histories from interactions (offline, in memory)."""
        ids = np.asarray(sorted({int(m) for m in movie_ids}), dtype=np.int64)
        neighbours = item_neighbours(ratings, ids, config)
        history, users = interaction_matrix(ratings, ids)
        return cls(ids, neighbours, history, users, config)

    def save(self, out_dir: Path) -> None:
        """Writes the artifact: neighbours, movie ids, histories, configuration."""
        out_dir.mkdir(parents=True, exist_ok=True)
        sp.save_npz(out_dir / NEIGHBOURS_FILE, self.neighbours.astype(np.float32))
        np.save(out_dir / MOVIES_FILE, self.movie_ids)
        coo = self.history.tocoo()
        users = np.array(sorted(self._row, key=self._row.__getitem__), dtype=np.int64)
        pd.DataFrame({"user_id": users[coo.row], "movie_id": self.movie_ids[coo.col]}).to_parquet(
            out_dir / HISTORY_FILE, index=False
        )
        meta = {"config": self.config.to_dict(), "movies": len(self.movie_ids), "users": len(users)}
        (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> ItemCFRuntime:
        """Reads what `save` wrote."""
        directory = Path(directory)
        meta = json.loads((directory / METADATA_FILE).read_text())
        movie_ids = np.load(directory / MOVIES_FILE)
        neighbours = sp.load_npz(directory / NEIGHBOURS_FILE).tocsr()
        history, users = interaction_matrix(pd.read_parquet(directory / HISTORY_FILE), movie_ids)
        return cls(movie_ids, neighbours, history, users, ItemCFConfig(**meta["config"]))

    def __len__(self) -> int:
        return len(self._row)

    def top_k(self, user_ids: Sequence[int], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each user's top-n unseen movies (ids, scores), best first; empty if unknown."""
        rows = [self._row.get(int(u), -1) for u in user_ids]
        known = [r for r in rows if r >= 0]
        scores = (self.history[known] @ self.neighbours).toarray() if known else None
        out: list[tuple[np.ndarray, np.ndarray]] = []
        position = 0
        for row in rows:
            if row < 0 or scores is None:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.float32)))
                continue
            seen = self.history.indices[self.history.indptr[row] : self.history.indptr[row + 1]]
            out.append(self._unseen_top(scores[position], seen, n))
            position += 1
        return out

    def candidates(self, user_id: int, n: int) -> ScoredMovies:
        """One user's top-n unseen movies as the stage payload."""
        ids, scores = self.top_k([user_id], n)[0]
        return ScoredMovies.of(ids, scores)

    def from_history(self, movie_ids: Iterable[int], n: int) -> ScoredMovies:
        """The top-n movies for a history given at serve time (a user the training data did
        not have, answered from what they posted as events), none of them in it.

        The same score as `top_k`: the history's [1, M] indicator row times the [M, M]
        neighbours; movies outside the catalog are ignored.
        """
        columns = self._columns(movie_ids)
        if n <= 0 or len(columns) == 0:
            return ScoredMovies.empty()
        indicator = np.zeros(len(self.movie_ids), dtype=np.float32)
        indicator[columns] = 1.0
        scores = np.asarray(self.neighbours.T @ indicator, dtype=np.float64)
        return ScoredMovies.of(*self._unseen_top(scores, columns, n))

    def _columns(self, movie_ids: Iterable[int]) -> np.ndarray:
        """The catalog columns of `movie_ids` (unknown ids dropped)."""
        ids = np.fromiter((int(m) for m in movie_ids), dtype=np.int64)
        at = np.searchsorted(self.movie_ids, ids)
        at = np.clip(at, 0, max(len(self.movie_ids) - 1, 0))
        return np.unique(at[self.movie_ids[at] == ids])

    def _unseen_top(
        self, user_scores: np.ndarray, seen: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The top-n (ids, scores) of one [M] score row, `seen` columns excluded."""
        user_scores = np.array(user_scores, dtype=np.float64)
        user_scores[seen] = -np.inf
        take = min(n, int(np.isfinite(user_scores).sum()), len(user_scores))
        if take <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        part = np.argpartition(-user_scores, take - 1)[:take]
        order = part[np.argsort(-user_scores[part], kind="stable")]
        return self.movie_ids[order], user_scores[order].astype(np.float32)

    def describe(self) -> dict[str, Any]:
        """Health details: size and configuration."""
        return {
            "movies": len(self.movie_ids),
            "users": len(self._row),
            "neighbours": int(self.neighbours.nnz),
            **self.config.to_dict(),
        }
