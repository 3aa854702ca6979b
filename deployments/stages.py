"""The typed interface of each stage, and its implementation over Ray Serve handles.

One `Protocol` per stage. The Controller's flow (`deployments.service`) only sees these
types, so the same flow runs over Serve handles (the app: `handles_for`) and in process (the
single-process baseline of the benchmarks passes the stage objects themselves: each
deployment class implements its Protocol). No method names travel as strings.

Every method is a coroutine; stage calls are unary. A Ray task error is unwrapped to the
exception the stage raised, and cancelling the caller (its deadline passed) cancels the call,
which frees the replica's slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from movierec.events import Event, ForgetResult, IngestResult
from movierec.payloads import (
    CandidateFilter,
    RankQuery,
    RetrievalCandidates,
    ScoredMovies,
    UserProfile,
)

T = TypeVar("T")

HealthPayload = dict[str, Any]
"""What a stage's `health()` answers: {"status", "pid", "detail"} (`StageHealth`)."""


class RetrievalStage(Protocol):
    """Two-tower retrieval over the whole catalog."""

    async def candidates(self, user_id: int, n: int, itemcf_n: int = 0) -> RetrievalCandidates:
        """Both sources in one call: the user's top-`n` movies by model score (seen ones
        included) and the top-`itemcf_n` unseen movies of the item-to-item source (empty
        for a user it does not know), each best first."""
        ...

    async def health(self) -> HealthPayload:
        """Cheap status of the replica (no model call)."""
        ...


class ContentStage(Protocol):
    """Content vectors: Redis KNN over the movies' text embeddings."""

    async def candidates(self, user_id: int, n: int, allowed: CandidateFilter) -> ScoredMovies:
        """Up to `n` unseen movies nearest to the user's liked movies (read by the stage
        itself from the online store); empty for a user without likes."""
        ...

    async def similar(self, movie_id: int, k: int) -> ScoredMovies | None:
        """A movie's `k` nearest neighbours (itself excluded); None if it is not indexed."""
        ...

    async def health(self) -> HealthPayload:
        """Redis answers and the index exists."""
        ...


class FeaturesStage(Protocol):
    """The user's online features (Feast, Redis)."""

    async def user(self, user_id: int) -> UserProfile | None:
        """The user's features, liked and seen movies; None for a user the store does not
        know (cold start)."""
        ...

    async def health(self) -> HealthPayload:
        """The store answers a one-user read."""
        ...


class RankingStage(Protocol):
    """The ranker: scores one request's candidates (reading their movie features itself)."""

    async def rank(self, query: RankQuery) -> np.ndarray:
        """[N] float32 scores aligned with `query.movie_ids`."""
        ...

    async def health(self) -> HealthPayload:
        """The ranker is loaded; batching statistics."""
        ...


class EventsStage(Protocol):
    """The feedback log: durable ingestion (and, in the deployment, the applier)."""

    async def ingest(self, events: Sequence[Event], client_id: str = "anonymous") -> IngestResult:
        """Logs the events durably, deduplicated by event_id (raises when it cannot;
        `RateLimitedError` past the client's rate)."""
        ...

    async def forget(self, user_id: int) -> ForgetResult:
        """Removes the user's events and event-driven features."""
        ...

    async def health(self) -> HealthPayload:
        """Redis answers; the applier's progress."""
        ...


@dataclass(frozen=True)
class Stages:
    """The four stages the Controller composes, and the feedback log (health only here:
    `POST /events` reaches it directly)."""

    retrieval: RetrievalStage
    content: ContentStage
    features: FeaturesStage
    ranking: RankingStage
    events: EventsStage | None = None

    def health_checks(self) -> dict[str, HealthProbe]:
        """Stage name -> its health call, in a fixed order (`events` when there is one)."""
        checks: dict[str, HealthProbe] = {
            "retrieval": self.retrieval.health,
            "content": self.content.health,
            "features": self.features.health,
            "ranking": self.ranking.health,
        }
        if self.events is not None:
            checks["events"] = self.events.health
        return checks


class HealthProbe(Protocol):
    """A stage's bound `health` method."""

    async def __call__(self) -> HealthPayload: ...


def _cause(exc: BaseException) -> BaseException:
    """The user exception inside a Ray task error (the exception itself otherwise)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


async def _answer(response: Any) -> Any:
    """Awaits one unary handle call; cancelling cancels it, a task error becomes its cause.

    Raises:
        TypeError: The method streams (stage calls must be unary).
    """
    if not isinstance(response, DeploymentResponse):
        raise TypeError("stage calls must be unary")
    try:
        return await response
    except asyncio.CancelledError:
        response.cancel()  # e.g. the deadline passed: free the replica's slot
        raise
    except Exception as exc:
        raise _cause(exc) from None


class _Handle:
    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def health(self) -> HealthPayload:
        result: HealthPayload = await _answer(self._handle.health.remote())
        return result


class RetrievalHandle(_Handle):
    """`RetrievalStage` over the Retrieval deployment's handle."""

    async def candidates(self, user_id: int, n: int, itemcf_n: int = 0) -> RetrievalCandidates:
        response = self._handle.candidates.remote(user_id, n, itemcf_n)
        result: RetrievalCandidates = await _answer(response)
        return result


class ContentHandle(_Handle):
    """`ContentStage` over the Content deployment's handle."""

    async def candidates(self, user_id: int, n: int, allowed: CandidateFilter) -> ScoredMovies:
        result: ScoredMovies = await _answer(self._handle.candidates.remote(user_id, n, allowed))
        return result

    async def similar(self, movie_id: int, k: int) -> ScoredMovies | None:
        result: ScoredMovies | None = await _answer(self._handle.similar.remote(movie_id, k))
        return result


class FeaturesHandle(_Handle):
    """`FeaturesStage` over the Features deployment's handle."""

    async def user(self, user_id: int) -> UserProfile | None:
        result: UserProfile | None = await _answer(self._handle.user.remote(user_id))
        return result


class RankingHandle(_Handle):
    """`RankingStage` over the Ranking deployment's handle."""

    async def rank(self, query: RankQuery) -> np.ndarray:
        result: np.ndarray = await _answer(self._handle.rank.remote(query))
        return result


class EventsHandle(_Handle):
    """`EventsStage` over the Events deployment's handle."""

    async def ingest(self, events: Sequence[Event], client_id: str = "anonymous") -> IngestResult:
        result: IngestResult = await _answer(self._handle.ingest.remote(list(events), client_id))
        return result

    async def forget(self, user_id: int) -> ForgetResult:
        result: ForgetResult = await _answer(self._handle.forget.remote(user_id))
        return result


def handles_for(
    retrieval: DeploymentHandle,
    content: DeploymentHandle,
    features: DeploymentHandle,
    ranking: DeploymentHandle,
    events: EventsStage | None = None,
) -> Stages:
    """The stages behind the other deployments' handles (the Controller's wiring)."""
    return Stages(
        retrieval=RetrievalHandle(retrieval),
        content=ContentHandle(content),
        features=FeaturesHandle(features),
        ranking=RankingHandle(ranking),
        events=events,
    )
