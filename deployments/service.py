"""The recommendation flow, independent of how the stages are reached.

`RecommendService.recommend(user_id, ...)`:

1. fan out concurrently: retrieval(user) and features(user) -> vector search(seeds) (vector
   search starts as soon as the user's seeds are known, while retrieval may still run);
2. merge and deduplicate the candidate lists (`merge_candidates`, sources remembered);
3. filter (`filter_items`: seen, request `exclude`, `genres`, year range) with the in-memory
   catalog, keep the best `max_ranked` by merged score;
4. fetch the candidates' features and rank them (batched ranking stage);
5. post-rules (`apply_post_rules`: boosts, genre cap exempting the requested genres), top k.

Every stage call has a deadline inside the request's total budget (`ControllerConfig.timeouts`,
`deployments.budget.Budget`); a stage that fails, is late, or that the budget no longer allows
is recorded in `fallbacks` (stage + a `FallbackReason` category) and the request goes on
without it (`degraded: true`). The fallback ladder:

* retrieval or vector search fails: the other source plus the in-memory popularity list;
* the user's features fail (typically Redis is down entirely: the vector search needs Redis
  too): no seen list and no seeds, so the popular, genre-diverse list from memory;
* the candidates' features fail: no ranking, candidates in merged-score order;
* ranking fails: candidates in merged-score order;
* the business rules (filters, genre cap, boosts) apply on every rung.

An unknown user gets the popular, genre-diverse cold-start list (`cold_start: true`).

The stages are `StageClient`s: Serve handles in the Controller, local objects in the
single-process baseline (benchmarks). A `RequestObserver` sees every finished request
(metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from deployments.budget import Budget
from deployments.catalog import Catalog
from deployments.common import describe, public_reason
from deployments.config import ControllerConfig, ServingContext
from deployments.schemas import (
    Fallback,
    FallbackReason,
    HealthResponse,
    RecommendationResponse,
    RecommendedMovie,
    SimilarMovie,
    SimilarResponse,
    StageHealth,
    overall_status,
)
from deployments.stage_client import StageClient, Stages
from models.features.cache import MovieFeatureCache
from movierec.candidates import Candidate, merge_candidates
from movierec.manifest import Manifest
from movierec.ranking_inputs import RankBlock, candidate_columns
from movierec.rules import Item, apply_post_rules, filter_items
from movierec.stages import CONTENT, LIKED_MOVIE_IDS, POPULAR, RETRIEVAL, SEEN_MOVIE_IDS, SOURCES

logger = logging.getLogger(__name__)


class RequestTrace:
    """What happened inside one request: stage timings, fallbacks, candidates, scores.

    Attributes:
        fallbacks: Stages that failed or were skipped, with a public reason.
        timings: Stage name -> wall time of its call, in milliseconds.
        candidates: Source name -> candidates it proposed (after the seen filter).
        merged: Distinct candidates after merging the sources.
        overlap: Candidates proposed by more than one source.
        ranked_scores: The ranker's scores of every ranked candidate (empty without ranking).
        started: `time.perf_counter()` at the start of the request, in seconds.
    """

    def __init__(self) -> None:
        self.fallbacks: list[Fallback] = []
        self.timings: dict[str, float] = {}
        self.candidates: dict[str, int] = {}
        self.merged = 0
        self.overlap = 0
        self.ranked_scores: list[float] = []
        self.started = time.perf_counter()

    def fail(self, stage: str, reason: FallbackReason) -> None:
        """Records a stage whose output is not used, and why (a `FallbackReason`)."""
        self.fallbacks.append(Fallback.model_validate({"stage": stage, "reason": reason}))

    def skip(self, stage: str) -> None:
        """Records a stage whose output is not used because another one failed (unless
        it already has a fallback entry of its own, e.g. it had timed out)."""
        if all(f.stage != stage for f in self.fallbacks):
            self.fail(stage, "skipped")

    def elapsed_ms(self) -> float:
        """Milliseconds since the request started."""
        return 1000.0 * (time.perf_counter() - self.started)

    def server_timing(self) -> str:
        """The `Server-Timing` header value (milliseconds per stage, and in total)."""
        parts = [f"{stage};dur={ms:.2f}" for stage, ms in self.timings.items()]
        parts.append(f"total;dur={self.elapsed_ms():.2f}")
        return ", ".join(parts)


class RequestObserver(Protocol):
    """Sees every answered recommendation request (e.g. to record metrics)."""

    def observe(self, trace: RequestTrace, response: RecommendationResponse) -> None:
        """Called once per request, after the response is built."""
        ...


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
    """Composes the stages into answers: recommendations, similar movies, health."""

    def __init__(
        self,
        stages: Stages,
        catalog: Catalog,
        default_version: str,
        observer: RequestObserver | None = None,
    ) -> None:
        """Holds the catalog and the popularity list in memory.

        Args:
            stages: How to reach retrieval, features, vector search and ranking.
            catalog: The in-memory movie catalog (and popularity order).
            default_version: Model version reported when the config names none.
            observer: Sees every answered recommendation request.
        """
        self._stages = stages
        self._catalog = catalog
        self._default_version = default_version
        self._observer = observer
        self._config = ControllerConfig()
        self._rules = self._config.rules.to_rule_config()
        self._movie_cache = MovieFeatureCache(
            self._config.movie_cache.ttl_s, self._config.movie_cache.size
        )
        self._movie_feature_names: list[str] | None = None
        self._failure_logged: dict[str, float] = {}
        self._prefetch: asyncio.Task[None] | None = None

    @property
    def catalog(self) -> Catalog:
        """The in-memory catalog."""
        return self._catalog

    @property
    def config(self) -> ControllerConfig:
        """The current configuration."""
        return self._config

    @property
    def model_version(self) -> str:
        """The configured model version, else the one derived from the manifest."""
        return self._config.model_version or self._default_version

    def configure(self, config: ControllerConfig) -> None:
        """Applies a new configuration; at the first call, also begins reading the popular
        movies' features into the near cache (in the background)."""
        self._config = config
        self._rules = config.rules.to_rule_config()
        cache = config.movie_cache
        self._movie_cache.resize(cache.ttl_s, cache.size)
        if self._prefetch is None and cache.ttl_s > 0 and cache.prefetch > 0:
            self._prefetch = asyncio.ensure_future(
                self._prefetch_movies(list(self._catalog.popular_ids[: cache.prefetch]))
            )

    async def _prefetch_movies(self, ids: list[int], chunk: int = 500) -> None:
        """Fills the near cache in chunks; failures only mean later requests read them."""
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            try:
                columns = await asyncio.wait_for(self._stages.features.call("movies", part), 30)
            except Exception as exc:
                logger.warning("movie feature prefetch stopped: %s", describe(exc))
                return
            self._remember_movies(part, columns)

    def _remember_movies(self, ids: Sequence[int], columns: dict[str, list[Any]]) -> None:
        names = list(columns)
        self._movie_feature_names = names
        rows = {
            movie_id: {name: columns[name][row] for name in names}
            for row, movie_id in enumerate(ids)
        }
        self._movie_cache.put_many(rows, time.monotonic())

    # --- stage calls ---------------------------------------------------------------------------

    async def _call(
        self,
        stage: str,
        call: Callable[[], Awaitable[Any]],
        timeout: float,
        trace: RequestTrace,
        budget: Budget | None = None,
        *,
        log: bool = True,
    ) -> tuple[bool, Any]:
        """Runs a stage call within its deadline; a failure is recorded, not raised.

        Args:
            stage: Stage name (for the trace and the logs).
            call: Starts the stage call (e.g. `lambda: client.call("rank", block)`); not
                called at all when the budget is spent.
            timeout: The stage's own deadline in seconds; the call is cancelled when it
                passes.
            trace: Receives the timing and, on failure, a fallback entry.
            budget: The request's total budget, which may shorten the deadline or skip the
                call (reason `no_budget`); None for calls outside a recommendation.
            log: Log failures (not for health probes).

        Returns:
            (True, result) or (False, None).
        """
        if budget is not None:
            allowed = budget.deadline(timeout)
            if allowed is None:
                trace.fail(stage, "no_budget")
                return False, None
            timeout = allowed
        started = time.perf_counter()
        reason: FallbackReason
        try:
            return True, await asyncio.wait_for(call(), timeout)
        except TimeoutError:
            reason, detail = "timeout", f"timeout after {1000 * timeout:.0f} ms"
        except Exception as exc:
            reason, detail = public_reason(exc), describe(exc)
        finally:
            trace.timings[stage] = 1000.0 * (time.perf_counter() - started)
        trace.fail(stage, reason)  # what the client sees: a category, no paths, no messages
        if log:
            self._log_failure(stage, detail)
        return False, None

    async def _ask(
        self,
        stage: str,
        client: StageClient,
        method: str,
        *args: Any,
        trace: RequestTrace,
        budget: Budget,
    ) -> tuple[bool, Any]:
        """`client.<method>(*args)` as the recommendation's `stage` call: deadline
        `timeouts.<stage>` inside the budget (see `_call`)."""
        timeout: float = getattr(self._config.timeouts, stage)
        return await self._call(stage, lambda: client.call(method, *args), timeout, trace, budget)

    def _log_failure(self, stage: str, detail: str, every_s: float = 10.0) -> None:
        """Logs a stage failure with its detail, at most once per `every_s` per stage."""
        now = time.monotonic()
        if now - self._failure_logged.get(stage, float("-inf")) >= every_s:
            self._failure_logged[stage] = now
            logger.warning("stage %s failed: %s", stage, detail)

    # --- answers -------------------------------------------------------------------------------

    async def recommend(
        self,
        user_id: int,
        k: int,
        genres: list[str],
        exclude: set[int],
        year_range: tuple[int | None, int | None] | None,
    ) -> tuple[RecommendationResponse, RequestTrace]:
        """Top-k movies for a user (the cold-start list for an unknown one).

        Args:
            user_id: The user.
            k: How many movies.
            genres: Only movies of one of these (already validated) genres; [] for any.
            exclude: Movie ids never to return.
            year_range: Inclusive (min, max) release years, either end open; None for any.

        Returns:
            The response and the request's trace (timings for `Server-Timing`).
        """
        trace = RequestTrace()
        response = await self._recommend(user_id, k, genres, exclude, year_range, trace)
        if self._observer is not None:
            self._observer.observe(trace, response)
        return response, trace

    async def similar(self, movie_id: int, k: int) -> SimilarResponse:
        """The movie's nearest neighbours by content embedding.

        Raises:
            MovieNotFoundError: Unknown movie, or one without a content embedding.
            StageFailedError: Vector search failed or timed out.
        """
        if movie_id not in self._catalog:
            raise MovieNotFoundError(f"movie {movie_id} is not in the catalog")
        trace = RequestTrace()
        ok, hits = await self._call(
            "similar",
            lambda: self._stages.content.call("similar", movie_id, k),
            self._config.timeouts.similar,
            trace,
        )
        if not ok:
            reason = trace.fallbacks[-1].reason if trace.fallbacks else "unknown"
            raise StageFailedError(f"similar movies are unavailable right now ({reason})")
        if hits is None:
            raise MovieNotFoundError(f"movie {movie_id} has no content embedding")
        items = []
        for neighbour, score in hits:
            movie = self._catalog.movies.get(neighbour)
            if movie is None:
                continue
            items.append(
                SimilarMovie(
                    movie_id=neighbour,
                    title=movie.title,
                    genres=list(movie.genres),
                    year=movie.year,
                    score=float(score),
                )
            )
        return SimilarResponse(movie_id=movie_id, items=items[:k])

    async def health(self) -> HealthResponse:
        """Calls each stage's cheap `health()`; "unavailable" only if this side cannot answer."""
        clients = self._stages.named()
        timeout = self._config.timeouts.health
        trace = RequestTrace()
        results = await asyncio.gather(
            *(
                self._call(name, _health_call(client), timeout, trace, log=False)
                for name, client in clients.items()
            )
        )
        stages: dict[str, StageHealth] = {
            "controller": StageHealth(
                status="ok",
                pid=os.getpid(),
                detail={
                    "movies": len(self._catalog),
                    "popular": len(self._catalog.popular_ids),
                    "model_version": self.model_version,
                    "genre_cap": self._rules.genre_cap,
                    "genre_window": self._rules.genre_window,
                    "cached_movies": len(self._movie_cache),
                },
            )
        }
        for name, (ok, payload) in zip(clients, results, strict=True):
            if ok and isinstance(payload, dict):
                stages[name] = StageHealth.model_validate(payload)
            else:
                reason = next((f.reason for f in trace.fallbacks if f.stage == name), "no answer")
                stages[name] = StageHealth(status="unavailable", detail={"error": reason})
        return HealthResponse(status=overall_status(stages), stages=stages)

    # --- the recommendation flow ---------------------------------------------------------------

    async def _recommend(
        self,
        user_id: int,
        k: int,
        genres: list[str],
        exclude: set[int],
        year_range: tuple[int | None, int | None] | None,
        trace: RequestTrace,
    ) -> RecommendationResponse:
        config = self._config
        counts, timeouts = config.candidates, config.timeouts
        budget = Budget(timeouts.total, timeouts.reserve, started=trace.started)

        async def retrieve() -> tuple[bool, Any]:
            if counts.retrieval == 0:
                return True, ([], [])
            return await self._ask(
                "retrieval",
                self._stages.retrieval,
                "recommend",
                user_id,
                counts.retrieval,
                trace=trace,
                budget=budget,
            )

        retrieval_task = asyncio.ensure_future(retrieve())
        features_ok, user = await self._ask(
            "features", self._stages.features, "user", user_id, trace=trace, budget=budget
        )
        if not features_ok or user is None:
            retrieval_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrieval_task
            if user is None and features_ok:
                return self._popular_answer(  # an unknown user: cold start
                    user_id, k, genres, exclude, year_range, trace, cold_start=True
                )
            # Without the user's features there is no seen list to filter with and no seeds:
            # typically Redis is down. The popular, genre-diverse list from memory.
            for stage in ("retrieval", "content", "ranking"):
                trace.skip(stage)
            return self._popular_answer(user_id, k, genres, exclude, year_range, trace)

        seen: set[int] = set(user.get(SEEN_MOVIE_IDS) or ())
        seeds = list(user.get(LIKED_MOVIE_IDS) or [])[: counts.n_seeds]
        content_ok: bool = True
        content_hits: Any = []
        if seeds and counts.content > 0:
            not_these = sorted(seen | exclude)
            content_ok, content_hits = await self._ask(
                "content",
                self._stages.content,
                "recommend",
                seeds,
                counts.content,
                not_these,
                genres or None,
                year_range,
                trace=trace,
                budget=budget,
            )
        retrieval_ok, retrieved = await retrieval_task

        lists: dict[str, list[tuple[int, float]]] = {}
        if retrieval_ok and retrieved is not None:
            ids, scores = retrieved
            lists[RETRIEVAL] = [(m, s) for m, s in zip(ids, scores, strict=True) if m not in seen]
        if content_ok and content_hits:
            lists[CONTENT] = list(content_hits)
        if not retrieval_ok or not content_ok or not lists:
            lists[POPULAR] = self._popular(counts.popular, seen)
        merged = merge_candidates(lists, config.weights)
        trace.candidates = {source: len(hits) for source, hits in lists.items()}
        trace.merged = len(merged)
        trace.overlap = sum(1 for c in merged if len(c.sources) > 1)
        candidates = self._filter(merged, seen, exclude, genres, year_range)
        if len(candidates) < k:
            candidates = self._fill_popular(candidates, k, seen, exclude, genres, year_range)
        candidates = candidates[: counts.max_ranked]

        scores = await self._rank(user_id, user, candidates, trace, budget)
        if scores is None:
            scored = [self._catalog.item(c.movie_id, c.merged_score) for c in candidates]
        else:
            scored = [
                self._catalog.item(c.movie_id, float(s))
                for c, s in zip(candidates, scores, strict=True)
            ]
            scored.sort(key=lambda item: -item.score)
        started = time.perf_counter()
        top = apply_post_rules(scored, self._rules, self._catalog.newest_year, k, genres)
        trace.timings["rules"] = 1000.0 * (time.perf_counter() - started)
        sources = {c.movie_id: c.sources for c in candidates}
        return self._response(user_id, top, sources, trace, cold_start=False)

    async def _rank(
        self,
        user_id: int,
        user: dict[str, Any],
        candidates: Sequence[Candidate],
        trace: RequestTrace,
        budget: Budget,
    ) -> list[float] | None:
        """Ranker scores aligned with `candidates`, or None: then the candidates keep their
        merged-score order (no movie features, or the ranker failed)."""
        if not candidates:
            return []
        ids = [c.movie_id for c in candidates]
        movies = await self._candidate_features(ids, trace, budget)
        if movies is None:
            trace.skip("ranking")
            return None
        block = RankBlock(
            user_id=user_id,
            user={k: v for k, v in user.items() if k not in (LIKED_MOVIE_IDS, SEEN_MOVIE_IDS)},
            movie_ids=ids,
            movies=movies,
            candidates=candidate_columns(
                [c.source_scores for c in candidates],
                [c.source_ranks for c in candidates],
                [c.merged_score for c in candidates],
                SOURCES,
            ),
        )
        ok, scores = await self._ask(
            "ranking", self._stages.ranking, "rank", block, trace=trace, budget=budget
        )
        if not ok:
            return None
        if scores is None or len(scores) != len(candidates):
            trace.fail("ranking", "bad_output")
            return None
        trace.ranked_scores = [float(s) for s in scores]
        return trace.ranked_scores

    async def _candidate_features(
        self, ids: list[int], trace: RequestTrace, budget: Budget
    ) -> dict[str, list[Any]] | None:
        """The candidates' movie features (columnar): near cache first, then the Features
        deployment for the missing rows only. None when they cannot be read."""
        found, missing = self._movie_cache.get_many(ids, time.monotonic())
        names = self._movie_feature_names
        if missing or names is None:
            wanted = missing or ids
            ok, columns = await self._ask(
                "candidate_features",
                self._stages.features,
                "movies",
                wanted,
                trace=trace,
                budget=budget,
            )
            if not ok:
                return None
            self._remember_movies(wanted, columns)
            names = list(columns)
            found.update({m: {n: columns[n][row] for n in names} for row, m in enumerate(wanted)})
        return {name: [found[i].get(name) for i in ids] for name in names}

    def _popular(self, n: int, seen: set[int]) -> list[tuple[int, float]]:
        return [(i.movie_id, i.score) for i in self._catalog.popular_items(n, seen=seen)]

    def _filter(
        self,
        merged: list[Candidate],
        seen: set[int],
        exclude: set[int],
        genres: list[str],
        year_range: tuple[int | None, int | None] | None,
    ) -> list[Candidate]:
        by_id = {c.movie_id: c for c in merged}
        items = [
            self._catalog.item(c.movie_id, c.merged_score)
            for c in merged
            if c.movie_id in self._catalog
        ]
        kept = filter_items(items, seen, exclude, genres or None, year_range)
        return [by_id[item.movie_id] for item in kept]

    def _fill_popular(
        self,
        candidates: list[Candidate],
        k: int,
        seen: set[int],
        exclude: set[int],
        genres: list[str],
        year_range: tuple[int | None, int | None] | None,
    ) -> list[Candidate]:
        """Appends popular movies passing the filters until there are k candidates."""
        have = {c.movie_id for c in candidates}
        extra = self._catalog.popular_items(
            k + len(have),
            seen=seen | have,
            exclude=exclude,
            genres=genres or None,
            year_range=year_range,
        )
        floor = min((c.merged_score for c in candidates), default=1.0)
        out = list(candidates)
        for rank, item in enumerate(extra[: k - len(out)], start=1):
            filler = Candidate(item.movie_id)
            filler.source_scores[POPULAR] = item.score
            filler.source_ranks[POPULAR] = rank
            filler.merged_score = floor * 0.5 / rank  # below every real candidate
            out.append(filler)
        return out

    def _popular_answer(
        self,
        user_id: int,
        k: int,
        genres: list[str],
        exclude: set[int],
        year_range: tuple[int | None, int | None] | None,
        trace: RequestTrace,
        *,
        cold_start: bool = False,
    ) -> RecommendationResponse:
        """The popular, genre-diverse list from memory, with the request's filters (the
        cold-start list of an unknown user, and the answer when Redis is down)."""
        items = self._catalog.cold_start(
            k, self._rules, exclude=exclude, genres=genres or None, year_range=year_range
        )
        sources = {item.movie_id: [POPULAR] for item in items}
        return self._response(user_id, items, sources, trace, cold_start=cold_start)

    def _response(
        self,
        user_id: int,
        items: Sequence[Item],
        sources: dict[int, list[str]],
        trace: RequestTrace,
        *,
        cold_start: bool,
    ) -> RecommendationResponse:
        out = []
        for item in items:
            movie = self._catalog.movies[item.movie_id]
            out.append(
                RecommendedMovie(
                    movie_id=item.movie_id,
                    title=movie.title,
                    genres=list(movie.genres),
                    year=movie.year,
                    score=float(item.score),
                    sources=sources.get(item.movie_id, []),
                )
            )
        return RecommendationResponse(
            user_id=user_id,
            items=out,
            model_version=self.model_version,
            degraded=bool(trace.fallbacks),
            fallbacks=trace.fallbacks,
            cold_start=cold_start,
        )


def _health_call(client: StageClient) -> Callable[[], Awaitable[Any]]:
    """Starts `client.health()` (bound now: no late binding in a loop)."""
    return lambda: client.call("health")


__all__ = [
    "MovieNotFoundError",
    "RecommendService",
    "RequestObserver",
    "RequestTrace",
    "StageFailedError",
    "manifest_version",
]
