"""The recommendation flow over in-process stage implementations: the call graph (at most
two stage calls in sequence) and every rung of the fallback ladder."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from ray.exceptions import ActorDiedError

from deployments.catalog import Catalog, Movie
from deployments.common import StageUnavailableError
from deployments.config import ControllerConfig
from deployments.request import RecommendRequest
from deployments.schemas import RecommendationResponse
from deployments.service import MovieNotFoundError, RecommendService, StageFailedError
from deployments.stages import HealthPayload, Stages
from movierec.payloads import (
    CandidateFilter,
    RankQuery,
    RetrievalCandidates,
    ScoredMovies,
    UserProfile,
)

CATALOG = Catalog(
    [Movie(i, f"M{i}", ("Drama",) if i % 2 else ("Comedy",), 1990 + i) for i in range(1, 21)],
    popular_ids=list(range(20, 0, -1)),
)
PROFILE = UserProfile(1, {"user_rating_mean": 4.0}, liked=(2,), seen=frozenset({2, 4}))


class Retrieval:
    def __init__(self) -> None:
        self.fail: Exception | None = None

    async def candidates(self, user_id: int, n: int, itemcf_n: int = 0) -> RetrievalCandidates:
        if self.fail:
            raise self.fail
        return RetrievalCandidates(
            ScoredMovies.of([2, 3, 5, 7, 9][:n], [5.0, 4.0, 3.0, 2.0, 1.0][:n]),
            ScoredMovies.of([11, 13][:itemcf_n], [0.5, 0.25][:itemcf_n]),
        )

    async def health(self) -> HealthPayload:
        return {"status": "ok", "pid": 1, "detail": {}}


class Content:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.fail: Exception | None = None

    async def candidates(self, user_id: int, n: int, allowed: CandidateFilter) -> ScoredMovies:
        self.started.set()
        if self.fail:
            raise self.fail
        return ScoredMovies.of([6, 8], [0.9, 0.8])

    async def similar(self, movie_id: int, k: int) -> ScoredMovies | None:
        return None if movie_id == 20 else ScoredMovies.of([3, 99, 5], [0.9, 0.8, 0.7])

    async def health(self) -> HealthPayload:
        raise StageUnavailableError("redis down")


class Features:
    def __init__(self, content: Content) -> None:
        self.content = content
        self.profile: UserProfile | None = PROFILE
        self.fail: Exception | None = None

    async def user(self, user_id: int) -> UserProfile | None:
        # the content source does not wait for the user's features: it has started already
        await asyncio.wait_for(self.content.started.wait(), 1.0)
        if self.fail:
            raise self.fail
        return self.profile

    async def health(self) -> HealthPayload:
        return {"status": "ok", "pid": 1, "detail": {}}


class Ranking:
    def __init__(self) -> None:
        self.queries: list[RankQuery] = []
        self.fail: Exception | None = None
        self.short = False

    async def rank(self, query: RankQuery) -> np.ndarray:
        self.queries.append(query)
        if self.fail:
            raise self.fail
        scores = query.movie_ids.astype(np.float32)  # the ranker prefers higher ids
        return scores[:1] if self.short else scores

    async def health(self) -> HealthPayload:
        return {"status": "ok", "pid": 1, "detail": {}}


def _setup() -> tuple[RecommendService, Retrieval, Content, Features, Ranking]:
    retrieval, content, ranking = Retrieval(), Content(), Ranking()
    features = Features(content)
    service = RecommendService(Stages(retrieval, content, features, ranking), CATALOG, "v1")
    # the two-source flow (the item-to-item source has its own test below)
    config = ControllerConfig.model_validate(
        {"rules": {"genre_cap": 0}, "candidates": {"itemcf": 0}}
    )
    service.configure(config)
    return service, retrieval, content, features, ranking


def _ask(service: RecommendService, k: int = 3) -> RecommendationResponse:
    response, _ = asyncio.run(service.recommend(RecommendRequest(1, k)))
    return response


def _fallbacks(response: RecommendationResponse) -> set[tuple[str, str]]:
    return {(f.stage, f.reason) for f in response.fallbacks}


def test_ranked_answer_from_both_sources_without_seen_movies() -> None:
    service, *_, ranking = _setup()
    response = _ask(service)
    assert not response.degraded and not response.cold_start
    # candidates 3 5 7 9 (retrieval, 2 seen) and 6 8 (content); the ranker prefers high ids
    assert [m.movie_id for m in response.items] == [9, 8, 7]
    assert response.items[1].sources == ["content"]
    (query,) = ranking.queries
    assert sorted(query.movie_ids.tolist()) == [3, 5, 6, 7, 8, 9]
    assert query.user == {"user_rating_mean": 4.0}


def test_unknown_user_gets_the_cold_start_list() -> None:
    service, _, _, features, ranking = _setup()
    features.profile = None
    response = _ask(service)
    assert response.cold_start and not response.degraded and ranking.queries == []
    assert [m.movie_id for m in response.items] == [20, 19, 18]


def test_features_down_means_the_popular_list_and_skipped_stages() -> None:
    service, _, _, features, _ = _setup()
    features.fail = StageUnavailableError("redis down")
    response = _ask(service)
    assert response.degraded and not response.cold_start
    assert _fallbacks(response) == {
        ("features", "unavailable"),
        ("retrieval", "skipped"),
        ("content", "skipped"),
        ("ranking", "skipped"),
    }
    assert [m.movie_id for m in response.items] == [20, 19, 18]


def test_a_failed_source_is_replaced_by_the_popular_list() -> None:
    service, retrieval, *_, ranking = _setup()
    retrieval.fail = RuntimeError("boom")
    response = _ask(service, k=10)
    assert _fallbacks(response) == {("retrieval", "error")}
    (query,) = ranking.queries
    assert query.candidates["in_retrieval"].sum() == 0
    assert query.candidates["in_content"].sum() == 2 and query.candidates["in_popular"].sum() > 0
    assert not {2, 4} & set(query.movie_ids.tolist())  # seen never comes back


@pytest.mark.parametrize("short", [False, True])
def test_ranking_failure_keeps_the_merged_order(short: bool) -> None:
    service, *_, ranking = _setup()
    if short:
        ranking.short = True
    else:
        ranking.fail = StageUnavailableError("no movie features")
    response = _ask(service)
    reason = "bad_output" if short else "unavailable"
    assert _fallbacks(response) == {("ranking", reason)}
    # merged order: retrieval 3 (rank 1), content 6 (rank 1) tie on RRF, then id order
    assert [m.movie_id for m in response.items] == [3, 6, 5]


def test_similar_and_health() -> None:
    service, *_ = _setup()
    similar = asyncio.run(service.similar(1, 2))
    assert [m.movie_id for m in similar.items] == [3, 5]  # 99 is not in the catalog
    with pytest.raises(MovieNotFoundError):
        asyncio.run(service.similar(20, 2))  # not indexed
    with pytest.raises(MovieNotFoundError):
        asyncio.run(service.similar(999, 2))  # not in the catalog
    health = asyncio.run(service.health())
    assert health.stages["content"].status == "unavailable"
    assert health.stages["retrieval"].status == "ok"
    assert health.status == "degraded"


def test_similar_fails_loudly_when_content_fails() -> None:
    service, _, content, *_ = _setup()

    async def broken(movie_id: int, k: int) -> Any:
        raise StageUnavailableError("redis down")

    content.similar = broken  # type: ignore[method-assign]
    with pytest.raises(StageFailedError, match="unavailable"):
        asyncio.run(service.similar(1, 2))


def _dies_once(stage: Any, method: str) -> None:
    """The stage's first `method` call fails as if its replica had been killed under it."""
    real, died = getattr(stage, method), []

    async def call(*args: Any) -> Any:
        if not died:
            died.append(True)
            raise ActorDiedError()
        return await real(*args)

    setattr(stage, method, call)


def test_every_stage_call_is_retried_once_when_its_replica_dies() -> None:
    service, retrieval, content, features, ranking = _setup()
    for stage, method in (
        (retrieval, "candidates"),
        (content, "candidates"),
        (content, "similar"),
        (features, "user"),
        (ranking, "rank"),
    ):
        _dies_once(stage, method)
    response = _ask(service)
    assert not response.degraded  # the same answer as without the crash
    assert [m.movie_id for m in response.items] == [9, 8, 7]
    assert [m.movie_id for m in asyncio.run(service.similar(1, 2)).items] == [3, 5]


def test_the_item_to_item_source_comes_in_the_retrieval_call_when_configured() -> None:
    service, retrieval, *_, ranking = _setup()
    service.configure(
        ControllerConfig.model_validate(
            {"rules": {"genre_cap": 0}, "candidates": {"itemcf": 2, "max_ranked": 10}}
        )
    )
    response = _ask(service, k=10)
    assert not response.degraded
    (query,) = ranking.queries
    assert {11, 13} <= set(query.movie_ids.tolist())
    assert query.candidates["in_itemcf"].sum() == 2
    assert next(m for m in response.items if m.movie_id == 13).sources == ["itemcf"]

    retrieval.fail = RuntimeError("boom")  # one call: both of its lists are lost together
    response = _ask(service, k=10)
    assert _fallbacks(response) == {("retrieval", "error")}
    assert ranking.queries[-1].candidates["in_itemcf"].sum() == 0
    assert ranking.queries[-1].candidates["in_retrieval"].sum() == 0


@pytest.mark.parametrize("action", ["demote", "drop"])
def test_a_movie_shown_n_times_without_a_reaction_is_demoted_or_dropped(action: str) -> None:
    service, _, _, features, ranking = _setup()
    service.clock = lambda: 100_000.0
    service.configure(
        ControllerConfig.model_validate(
            {
                "rules": {"genre_cap": 0},
                "candidates": {"itemcf": 0},
                "impressions": {"n": 3, "window_s": 3600, "action": action},
            }
        )
    )
    shown = [(9, 99_990), (9, 99_980), (9, 99_970)]  # three times in the last hour
    shown += [(8, 10), (8, 20), (8, 30), (7, 99_999)]  # 8: long ago; 7: once
    features.profile = UserProfile(
        1, {"user_rating_mean": 4.0}, (2,), frozenset({2, 4}), tuple(shown)
    )
    response = _ask(service, k=6)
    (query,) = ranking.queries
    if action == "drop":
        # five candidates left for k=6: the popular filler (20, unseen, not shown) joins
        assert 9 not in query.movie_ids.tolist()
        assert [m.movie_id for m in response.items] == [20, 8, 7, 6, 5, 3]
    else:  # the ranker scores ids; 9 * 0.5 = 4.5 falls between 5 and 3
        assert 9 in query.movie_ids.tolist()
        assert [m.movie_id for m in response.items] == [8, 7, 6, 5, 9, 3]
    service.configure(
        ControllerConfig.model_validate(
            {
                "rules": {"genre_cap": 0},
                "candidates": {"itemcf": 0},
                "impressions": {"enabled": False},
            }
        )
    )
    assert [m.movie_id for m in _ask(service, k=2).items] == [9, 8]


def test_the_events_stage_is_in_the_health_list() -> None:
    retrieval, content, ranking = Retrieval(), Content(), Ranking()

    class Events:
        async def ingest(self, events: Any, client_id: str = "anonymous") -> Any:
            raise NotImplementedError

        async def forget(self, user_id: int) -> Any:
            raise NotImplementedError

        async def health(self) -> HealthPayload:
            return {"status": "ok", "pid": 1, "detail": {"applier": {"entries": 3}}}

    stages = Stages(retrieval, content, Features(content), ranking, Events())
    health = asyncio.run(RecommendService(stages, CATALOG, "v1").health())
    assert list(health.stages) == ["controller", *stages.health_checks()]
    assert list(health.stages)[-1] == "events"
    assert health.stages["events"].detail == {"applier": {"entries": 3}}
