"""The typed payloads that travel between the Controller and the stages.

Compact and picklable: numpy arrays for per-movie values, frozen dataclasses around them.
The same types are used over Serve handles and in process (the single-process baseline), and
by the models' runtimes that produce them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

YearRange = tuple[int | None, int | None]
"""Inclusive (min, max) release years; either end open (None)."""


@dataclass(frozen=True, slots=True)
class CandidateFilter:
    """What a request allows: pushed into a candidate source where it can filter cheaply.

    Attributes:
        exclude: Movie ids never to return.
        genres: Only movies with one of these genres; () for any.
        year_range: Inclusive release-year bounds; None for any.
    """

    exclude: frozenset[int] = frozenset()
    genres: tuple[str, ...] = ()
    year_range: YearRange | None = None


@dataclass(frozen=True, slots=True)
class ScoredMovies:
    """A ranked list of movies: what a candidate source answers.

    Attributes:
        movie_ids: [N] int64, best first.
        scores: [N] float32, the source's own scores (dot product, cosine), aligned.
    """

    movie_ids: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        if self.movie_ids.shape != self.scores.shape or self.movie_ids.ndim != 1:
            raise ValueError(
                f"movie_ids {self.movie_ids.shape} and scores {self.scores.shape} must be [N]"
            )

    @classmethod
    def of(cls, movie_ids: Any, scores: Any) -> ScoredMovies:
        """From any sequences (converted to int64 ids and float32 scores)."""
        return cls(np.asarray(movie_ids, dtype=np.int64), np.asarray(scores, dtype=np.float32))

    @classmethod
    def empty(cls) -> ScoredMovies:
        """No movies."""
        return cls.of([], [])

    def __len__(self) -> int:
        return int(self.movie_ids.shape[0])

    def pairs(self) -> Iterator[tuple[int, float]]:
        """(movie_id, score) as Python numbers, best first."""
        return zip(self.movie_ids.tolist(), self.scores.tolist(), strict=True)


@dataclass(frozen=True, slots=True)
class RetrievalCandidates:
    """What one Retrieval call answers: both candidate sources the deployment holds.

    One call instead of two: the item-to-item lookup costs microseconds, a stage call a few
    milliseconds of routing and of the replica's event loop.

    Attributes:
        retrieval: The two-tower top-n, best first (seen movies included).
        itemcf: The item-to-item source's top unseen movies, best first (empty for a user
            it does not know, or when none were asked).
    """

    retrieval: ScoredMovies
    itemcf: ScoredMovies


@dataclass(frozen=True, slots=True)
class UserProfile:
    """One user's online features (the Features stage's answer for a known user).

    Attributes:
        user_id: The user.
        features: The ranker's user features by Feast name (values may be None).
        liked: Movies the user liked, best rated first (the content source's seeds).
        seen: Every movie the user has rated (never recommended again).
        impressions: (movie_id, epoch seconds) of each recent showing of a movie the user
            did not click, watch or rate since (newest first; the impression rule's input).
    """

    user_id: int
    features: Mapping[str, Any] = field(default_factory=dict)
    liked: tuple[int, ...] = ()
    seen: frozenset[int] = frozenset()
    impressions: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RankQuery:
    """One request's candidates for the ranker; the Ranking stage adds their movie features.

    Attributes:
        user_id: The user.
        user: The user's ranker features (name -> value; values may be None).
        movie_ids: [N] int64 candidate ids.
        candidates: Per-candidate values computed by the Controller, name -> [N] array:
            `merged_score`, `<source>_score`, `<source>_rank`, `in_<source>` (see
            `movierec.ranking_inputs`), [N] float64, NaN where a source did not propose the
            movie (the input's default then).
    """

    user_id: int
    user: Mapping[str, Any]
    movie_ids: np.ndarray
    candidates: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return int(self.movie_ids.shape[0])
