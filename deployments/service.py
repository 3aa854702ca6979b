"""The recommendation flow, independent of how the stages are reached.

`RecommendService.recommend(request)`, at most two stage calls in sequence:

1. concurrently: retrieval(user), content(user), itemcf(user) (the item-to-item source,
   served by the Retrieval deployment) and features(user); the content source reads
   the user's liked movies itself, so nothing waits for the user's features but ranking;
2. an unknown user (no features) gets the popular, genre-diverse cold-start list;
3. assemble (`deployments.assembly`): merge the sources' lists, filter (seen, the request's
   exclude, genres, years), fill with popular movies, keep the best `max_ranked`;
4. rank them (the Ranking stage reads their movie features itself);
5. post-rules (`movierec.rules.apply_post_rules`: boosts, genre cap), top k.

The impression rule (`user_config.impressions`): a movie the user's profile shows N times
within the window without a reaction is dropped before assembly (as if seen) or demoted after
ranking (`movierec.rules.fatigued_movies`, `demote`); the impressions come with the profile.

Every stage call has a deadline inside the request's budget (`deployments.stage_caller`), and
is made once more if its replica died under it (all stage calls are reads); a stage that
fails, is late, or that the budget no longer allows is recorded in `fallbacks` and the
request goes on without it (`degraded: true`). The fallback ladder:

* retrieval or content fails: the other sources plus the in-memory popularity list;
* itemcf fails: the other sources;
* the user's features fail (typically Redis is down): no seen list, so the popular,
  genre-diverse list from memory (retrieval, content and ranking `skipped`);
* ranking fails (or cannot read the candidates' movie features): merged-score order;
* the business rules apply on every rung.

The stages are the Protocols of `deployments.stages`: Serve handles in the Controller, the
stage objects themselves in the single-process baseline. A `RequestObserver` sees every
answered request (metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import time
from typing import Protocol

from deployments import answers
from deployments.assembly import rank_query, select_candidates, source_lists
from deployments.budget import Budget
from deployments.catalog import Catalog
from deployments.config import ControllerConfig, ServingContext
from deployments.request import RecommendRequest
from deployments.schemas import (
    HealthResponse,
    RecommendationResponse,
    SimilarResponse,
    StageHealth,
    overall_status,
)
from deployments.stage_caller import (
    FailureLog,
    RequestTrace,
    StageCaller,
    StageFailure,
    replica_lost,
)
from deployments.stages import Stages
from movierec.manifest import Manifest
from movierec.payloads import RetrievalCandidates, ScoredMovies, UserProfile
from movierec.rules import apply_post_rules, demote, fatigued_movies
from movierec.stages import CONTENT, FEATURES, POPULAR, RANKING, RETRIEVAL


class RequestObserver(Protocol):
    """Sees every answered recommendation request (e.g. to record metrics)."""

    def observe(self, trace: RequestTrace, response: RecommendationResponse) -> None:
        """Called once per request, after the response is built."""
        ...


class Observers:
    """Several `RequestObserver`s as one, called in order."""

    def __init__(self, *observers: RequestObserver) -> None:
        self._observers = observers

    def observe(self, trace: RequestTrace, response: RecommendationResponse) -> None:
        """Hands the request to each observer."""
        for observer in self._observers:
            observer.observe(trace, response)


class MovieNotFoundError(LookupError):
    """The movie is not in the catalog, or has no content embedding (HTTP 404)."""


class StageFailedError(RuntimeError):
    """A stage the answer cannot do without failed (HTTP 503); the message is public."""


def manifest_version(context: ServingContext) -> str:
    """A model version derived from the artifacts manifest (the build's fingerprints)."""
    layout = context.layout
    base = f"{layout.variant}-{layout.mode}"
    manifest = Manifest.load(layout.root)
    if manifest is None or not manifest.steps:
        return base
    digest = hashlib.sha256(
        json.dumps({n: s.fingerprint for n, s in sorted(manifest.steps.items())}).encode()
    ).hexdigest()
    return f"{base}-{digest[:10]}"


class RecommendService:
    """Composes the stages into answers: recommendations, similar movies, health.

    Args:
        stages: How to reach retrieval, content, features and ranking.
        catalog: The in-memory movie catalog (and popularity order).
        default_version: Model version reported when the config names none.
        observer: Sees every answered recommendation request.
    """

    def __init__(
        self,
        stages: Stages,
        catalog: Catalog,
        default_version: str,
        observer: RequestObserver | None = None,
    ) -> None:
        self._stages = stages
        self.catalog = catalog
        self._default_version = default_version
        self._observer = observer
        self._failures = FailureLog()
        self.clock = time.time
        """Epoch seconds (the impression window's end); tests set their own."""
        self.candidate_problems: list[str] = []
        """How the candidate settings differ from the ranker's (`deployments.candidate_check`)."""
        self.configure(ControllerConfig())

    @property
    def model_version(self) -> str:
        """The configured model version, else the one derived from the manifest."""
        return self.config.model_version or self._default_version

    def configure(self, config: ControllerConfig) -> None:
        """Applies a new configuration (the Controller's `user_config`)."""
        self.config = config
        self._rules = config.rules.to_rule_config()
        self._impressions = config.impressions.to_rule()

    async def recommend(
        self, request: RecommendRequest
    ) -> tuple[RecommendationResponse, RequestTrace]:
        """Top-k movies for a user (the cold-start list for an unknown one).

        Returns:
            The response and the request's trace (timings for `Server-Timing`).
        """
        trace = RequestTrace()
        response = await self._recommend(request, trace)
        if self._observer is not None:
            self._observer.observe(trace, response)
        return response, trace

    async def _recommend(
        self, request: RecommendRequest, trace: RequestTrace
    ) -> RecommendationResponse:
        config, stages, user_id = self.config, self._stages, request.user_id
        counts, timeouts = config.candidates, config.timeouts
        budget = Budget(timeouts.total, timeouts.reserve, started=trace.started)
        caller = StageCaller(trace, budget, self._failures)

        async def retrieve() -> RetrievalCandidates | StageFailure:
            if counts.retrieval == 0 and counts.itemcf == 0:
                return RetrievalCandidates(ScoredMovies.empty(), ScoredMovies.empty())
            return await caller.ask(
                RETRIEVAL,
                lambda: stages.retrieval.candidates(user_id, counts.retrieval, counts.itemcf),
                timeouts.retrieval,
                retry_on=replica_lost,
            )

        async def content() -> ScoredMovies | StageFailure:
            if counts.content == 0:
                return ScoredMovies.empty()
            return await caller.ask(
                CONTENT,
                lambda: stages.content.candidates(user_id, counts.content, request.allowed),
                timeouts.content,
                retry_on=replica_lost,
            )

        sources = asyncio.gather(retrieve(), content())
        profile = await caller.ask(
            FEATURES, lambda: stages.features.user(user_id), timeouts.features, replica_lost
        )
        if not isinstance(profile, UserProfile):
            sources.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sources
            if profile is None:  # a user the store does not know: cold start
                return self._popular_answer(request, trace, cold_start=True)
            for stage in (RETRIEVAL, CONTENT, RANKING):  # no seen list: the popular list
                trace.skip(stage)
            return self._popular_answer(request, trace, cold_start=False)
        retrieved, similar = await sources

        fatigued = (
            fatigued_movies(profile.impressions, self.clock(), self._impressions)
            if config.impressions.enabled
            else frozenset()
        )
        drop = fatigued if self._impressions.action == "drop" else frozenset()
        seen = profile.seen | drop
        popular = [
            (i.movie_id, i.score) for i in self.catalog.popular_items(counts.popular, seen=seen)
        ]
        both = None if isinstance(retrieved, StageFailure) else retrieved
        lists = source_lists(
            None if both is None else both.retrieval,
            None if isinstance(similar, StageFailure) else similar,
            seen,
            popular,
            None if both is None else both.itemcf,
        )
        merged, candidates = select_candidates(
            self.catalog, lists, config.weights, seen, request, counts.max_ranked
        )
        trace.candidates = {source: len(hits) for source, hits in lists.items()}
        trace.merged = len(merged)
        trace.overlap = sum(1 for c in merged if len(c.sources) > 1)

        scores = None
        if candidates:
            query = rank_query(profile, candidates)
            ranked = await caller.ask(
                RANKING, lambda: stages.ranking.rank(query), timeouts.ranking, replica_lost
            )
            if not isinstance(ranked, StageFailure):
                if len(ranked) == len(candidates):
                    scores = trace.ranked_scores = [float(s) for s in ranked]
                else:
                    trace.fail(RANKING, "bad_output")
        if scores is None:
            scored = [self.catalog.item(c.movie_id, c.merged_score) for c in candidates]
        else:
            scored = [
                self.catalog.item(c.movie_id, s) for c, s in zip(candidates, scores, strict=True)
            ]
            scored.sort(key=lambda item: -item.score)
        if fatigued and not drop:
            scored = demote(scored, fatigued, self._impressions.demote_factor)
        started = time.perf_counter()
        top = apply_post_rules(
            scored, self._rules, self.catalog.newest_year, request.k, request.genres
        )
        trace.timings["rules"] = 1000.0 * (time.perf_counter() - started)
        return answers.recommendation(
            self.catalog,
            user_id,
            top,
            {c.movie_id: c.sources for c in candidates},
            model_version=self.model_version,
            fallbacks=trace.fallbacks,
            cold_start=False,
        )

    def _popular_answer(
        self, request: RecommendRequest, trace: RequestTrace, *, cold_start: bool
    ) -> RecommendationResponse:
        """The popular, genre-diverse list from memory, with the request's filters (the
        cold-start list of an unknown user, and the answer when Redis is down)."""
        allowed = request.allowed
        items = self.catalog.cold_start(
            request.k,
            self._rules,
            exclude=allowed.exclude,
            genres=allowed.genres or None,
            year_range=allowed.year_range,
        )
        return answers.recommendation(
            self.catalog,
            request.user_id,
            items,
            {item.movie_id: [POPULAR] for item in items},
            model_version=self.model_version,
            fallbacks=trace.fallbacks,
            cold_start=cold_start,
        )

    async def similar(self, movie_id: int, k: int) -> SimilarResponse:
        """The movie's nearest neighbours by content embedding.

        Raises:
            MovieNotFoundError: Unknown movie, or one without a content embedding.
            StageFailedError: The content stage failed or timed out.
        """
        if movie_id not in self.catalog:
            raise MovieNotFoundError(f"movie {movie_id} is not in the catalog")
        caller = StageCaller(RequestTrace(), None, self._failures)
        content = self._stages.content
        hits = await caller.ask(
            CONTENT,
            lambda: content.similar(movie_id, k),
            self.config.timeouts.similar,
            replica_lost,
        )
        if isinstance(hits, StageFailure):
            raise StageFailedError(f"similar movies are unavailable right now ({hits.reason})")
        if hits is None:
            raise MovieNotFoundError(f"movie {movie_id} has no content embedding")
        return answers.similar(self.catalog, movie_id, hits, k)

    async def health(self) -> HealthResponse:
        """Calls each stage's cheap `health()`; "unavailable" only if this side cannot answer."""
        probes = self._stages.health_checks()
        caller = StageCaller(RequestTrace(), None, None)
        timeout = self.config.timeouts.health
        results = await asyncio.gather(
            *(caller.ask(name, probe, timeout) for name, probe in probes.items())
        )
        stages: dict[str, StageHealth] = {
            "controller": StageHealth(
                status="degraded" if self.candidate_problems else "ok",
                pid=os.getpid(),
                detail={
                    "movies": len(self.catalog),
                    "popular": len(self.catalog.popular_ids),
                    "model_version": self.model_version,
                    "genre_cap": self._rules.genre_cap,
                    "genre_window": self._rules.genre_window,
                    "candidates": {
                        "match_ranker": not self.candidate_problems,
                        "mismatch": self.candidate_problems,
                    },
                },
            )
        }
        for name, payload in zip(probes, results, strict=True):
            if isinstance(payload, StageFailure):
                stages[name] = StageHealth(status="unavailable", detail={"error": payload.reason})
            else:
                stages[name] = StageHealth.model_validate(payload)
        return HealthResponse(status=overall_status(stages), stages=stages)


__all__ = [
    "MovieNotFoundError",
    "Observers",
    "RecommendService",
    "RequestObserver",
    "RequestTrace",
    "StageFailedError",
    "manifest_version",
]
