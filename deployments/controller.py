"""Controller deployment: the FastAPI ingress that composes the stages into one answer.

`GET /recommendations/{user_id}`:

1. fan out concurrently: Retrieval(user) and Features(user) -> VectorSearch(seeds) (vector
   search starts as soon as the user's seeds are known, while retrieval may still run);
2. merge and deduplicate the candidate lists (`merge_candidates`, sources remembered);
3. filter (`filter_items`: seen, request `exclude`, `genres`, year range) with the in-memory
   catalog, keep the best `max_ranked` by merged score;
4. fetch the candidates' features and rank them (batched Ranking deployment);
5. post-rules (`apply_post_rules`: boosts, genre cap exempting the requested genres), top k.

Every stage call has a deadline (`user_config.timeouts`); a failed or late stage is recorded
in `fallbacks` and the request goes on without it (`degraded: true`): retrieval down ->
vector search + popularity, ranking down -> merged-score order with the rules, everything
down -> popularity. An unknown user gets the popular, genre-diverse cold-start list.

No `from __future__ import annotations` here: FastAPI (through Serve's class-based ingress)
must resolve the route signatures' annotations at runtime.
"""

import asyncio
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from ray import serve
from ray.serve import metrics
from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.candidates import Candidate, merge_candidates
from deployments.catalog import Catalog
from deployments.common import describe, public_reason
from deployments.config import (
    SOURCE_POPULAR,
    SOURCE_RETRIEVAL,
    SOURCE_VSS,
    SOURCES,
    ControllerConfig,
    ServingContext,
)
from deployments.features import LIKED, SEEN, MovieFeatureCache
from deployments.ranking_inputs import RankBlock, candidate_columns
from deployments.rules import Item, apply_post_rules, filter_items
from deployments.schemas import (
    ID_MAX,
    K_DEFAULT,
    K_MAX,
    MAX_EXCLUDE,
    MAX_GENRES,
    NO_PARAMS,
    RECOMMENDATION_PARAMS,
    SIMILAR_PARAMS,
    YEAR_MAX,
    YEAR_MIN,
    ErrorResponse,
    Fallback,
    HealthResponse,
    RecommendationResponse,
    RecommendedMovie,
    SimilarMovie,
    SimilarResponse,
    StageHealth,
    check_genres,
    check_query_params,
    check_year_range,
    overall_status,
)
from models.pipeline.manifest import Manifest

logger = logging.getLogger(__name__)


class CatchAllMiddleware:
    """Turns any unhandled exception into a JSON 500: no traceback ever reaches a client.

    (Starlette's own error middleware re-raises after answering; this one does not.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                response = JSONResponse({"detail": "internal server error"}, status_code=500)
                await response(scope, receive, send)


app = FastAPI(
    title="movierec",
    version="0.1.0",
    description=(
        "Multi-stage movie recommendations: two-tower retrieval and content vector search "
        "candidates, Feast features, a batched ranker and business rules."
    ),
)
app.add_middleware(CatchAllMiddleware)


def _allowed(params: frozenset[str]) -> Callable[[Request], None]:
    def reject_unknown(request: Request) -> None:
        check_query_params(request.query_params.keys(), params)

    return reject_unknown


class RequestTrace:
    """Per-request fallbacks and stage timings."""

    def __init__(self) -> None:
        self.fallbacks: list[Fallback] = []
        self.timings: dict[str, float] = {}
        self.started = time.perf_counter()

    def fail(self, stage: str, reason: str) -> None:
        """Records a stage that failed (or was skipped) and why."""
        self.fallbacks.append(Fallback(stage=stage, reason=reason[:500]))

    def server_timing(self) -> str:
        """The `Server-Timing` header value (milliseconds per stage, and in total)."""
        parts = [f"{stage};dur={ms:.2f}" for stage, ms in self.timings.items()]
        parts.append(f"total;dur={1000.0 * (time.perf_counter() - self.started):.2f}")
        return ", ".join(parts)


StageResponse = DeploymentResponse[Any] | DeploymentResponseGenerator[Any]


async def _resolve(response: StageResponse) -> Any:
    if not isinstance(response, DeploymentResponse):
        raise TypeError("stage calls must be unary (not streaming)")
    return await response


def _cause(exc: BaseException) -> BaseException:
    """The user exception inside a Ray task error."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


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


@serve.deployment(
    ray_actor_options={"num_cpus": 0.3},
    max_ongoing_requests=64,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
@serve.ingress(app)
class Controller:
    """HTTP ingress: validation, stage composition, fallbacks, rules, response."""

    def __init__(
        self,
        retrieval: DeploymentHandle,
        features: DeploymentHandle,
        vector_search: DeploymentHandle,
        ranking: DeploymentHandle,
        context: ServingContext,
    ) -> None:
        """Loads the catalog and the popularity list into memory.

        Args:
            retrieval: Handle of the `Retrieval` deployment.
            features: Handle of the `Features` deployment.
            vector_search: Handle of the `VectorSearch` deployment.
            ranking: Handle of the `Ranking` deployment.
            context: The artifacts tree.
        """
        self._retrieval = retrieval
        self._features = features
        self._vss = vector_search
        self._ranking = ranking
        self._catalog = Catalog.load(context.layout.catalog_dir)
        self._default_version = manifest_version(context)
        self._config = ControllerConfig()
        self._rules = self._config.rules.to_rule_config()
        self._movie_cache = MovieFeatureCache(
            self._config.movie_cache.ttl_s, self._config.movie_cache.size
        )
        self._movie_feature_names: list[str] | None = None
        self._failure_logged: dict[str, float] = {}
        self._prefetch: asyncio.Task[None] | None = None
        self._stage_ms = metrics.Histogram(
            "movierec_stage_latency_ms",
            description="Latency of each stage call made by the Controller.",
            boundaries=[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
            tag_keys=("stage",),
        )
        self._fallback_count = metrics.Counter(
            "movierec_fallbacks_total",
            description="Requests served without a stage's output.",
            tag_keys=("stage",),
        )
        logger.info(
            "catalog: %d movies, %d genres, %d popular",
            len(self._catalog),
            len(self._catalog.genres),
            len(self._catalog.popular_ids),
        )

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`ControllerConfig`) without a restart; at start, also
        begins reading the popular movies' features into the near cache (background)."""
        self._config = ControllerConfig.model_validate(config or {})
        self._rules = self._config.rules.to_rule_config()
        cache = self._config.movie_cache
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
                columns = await asyncio.wait_for(_resolve(self._features.movies.remote(part)), 30)
            except Exception as exc:
                logger.warning("movie feature prefetch stopped: %s", describe(_cause(exc)))
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

    @property
    def model_version(self) -> str:
        """The configured model version, else the one derived from the manifest."""
        return self._config.model_version or self._default_version

    # --- stage calls ---------------------------------------------------------------------------

    async def _call(
        self,
        stage: str,
        response: StageResponse,
        timeout: float,
        trace: RequestTrace,
        *,
        record: bool = True,
    ) -> tuple[bool, Any]:
        """Awaits a handle call within its deadline; a failure is recorded, not raised.

        Args:
            stage: Stage name (for the trace, the metrics and the logs).
            response: The handle call.
            timeout: Deadline in seconds; the call is cancelled when it passes.
            trace: Receives the timing and, on failure, a fallback entry.
            record: Record the latency and fallback metrics (not for health probes).

        Returns:
            (True, result) or (False, None).
        """
        started = time.perf_counter()
        try:
            return True, await asyncio.wait_for(_resolve(response), timeout)
        except TimeoutError:
            response.cancel()
            reason = detail = f"timeout after {timeout:g} s"
        except Exception as exc:
            cause = _cause(exc)
            reason, detail = public_reason(cause), describe(cause)
        finally:
            elapsed = 1000.0 * (time.perf_counter() - started)
            trace.timings[stage] = elapsed
            if record:
                self._stage_ms.observe(elapsed, tags={"stage": stage})
        trace.fail(stage, reason)  # what the client sees: no paths, no messages
        if record:
            self._fallback_count.inc(tags={"stage": stage})
            self._log_failure(stage, detail)
        return False, None

    def _log_failure(self, stage: str, detail: str, every_s: float = 10.0) -> None:
        """Logs a stage failure with its detail, at most once per `every_s` per stage."""
        now = time.monotonic()
        if now - self._failure_logged.get(stage, float("-inf")) >= every_s:
            self._failure_logged[stage] = now
            logger.warning("stage %s failed: %s", stage, detail)

    # --- routes --------------------------------------------------------------------------------

    @app.get(
        "/recommendations/{user_id}",
        response_model=RecommendationResponse,
        responses={500: {"model": ErrorResponse}},
        summary="Top-k movies for a user",
    )
    async def recommendations(
        self,
        response: Response,
        user_id: Annotated[int, Path(ge=1, le=ID_MAX, description="MovieLens user id.")],
        k: Annotated[int, Query(ge=1, le=K_MAX, description="How many movies.")] = K_DEFAULT,
        genres: Annotated[
            list[str] | None,
            Query(
                max_length=MAX_GENRES,
                description="Only movies with one of these genres (repeatable).",
            ),
        ] = None,
        exclude: Annotated[
            list[Annotated[int, Field(ge=1, le=ID_MAX)]] | None,
            Query(max_length=MAX_EXCLUDE, description="Movie ids never to return (repeatable)."),
        ] = None,
        year_min: Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)] = None,
        year_max: Annotated[int | None, Query(ge=YEAR_MIN, le=YEAR_MAX)] = None,
        _: None = Depends(_allowed(RECOMMENDATION_PARAMS)),
    ) -> RecommendationResponse:
        """Personal recommendations; an unknown user gets the cold-start list."""
        check_year_range(year_min, year_max)
        wanted = check_genres(genres or [], self._catalog.genres)
        year_range = None if year_min is None and year_max is None else (year_min, year_max)
        trace = RequestTrace()
        result = await self._recommend(user_id, k, wanted, set(exclude or ()), year_range, trace)
        response.headers["Server-Timing"] = trace.server_timing()
        return result

    @app.get(
        "/movies/{movie_id}/similar",
        response_model=SimilarResponse,
        responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
        summary="Movies similar to a movie (content vector search)",
    )
    async def similar(
        self,
        movie_id: Annotated[int, Path(ge=1, le=ID_MAX, description="MovieLens movie id.")],
        k: Annotated[int, Query(ge=1, le=K_MAX)] = K_DEFAULT,
        _: None = Depends(_allowed(SIMILAR_PARAMS)),
    ) -> SimilarResponse | JSONResponse:
        """The movie's nearest neighbours by content embedding."""
        if movie_id not in self._catalog:
            return JSONResponse(
                {"detail": f"movie {movie_id} is not in the catalog"}, status_code=404
            )
        trace = RequestTrace()
        ok, hits = await self._call(
            "similar", self._vss.similar.remote(movie_id, k), self._config.timeouts.similar, trace
        )
        if not ok:
            reason = trace.fallbacks[-1].reason if trace.fallbacks else "unknown"
            return JSONResponse(
                {"detail": f"similar movies are unavailable right now ({reason})"},
                status_code=503,
            )
        if hits is None:
            return JSONResponse(
                {"detail": f"movie {movie_id} has no content embedding"}, status_code=404
            )
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

    @app.get("/healthz", response_model=HealthResponse, summary="Health of every stage")
    async def healthz(
        self, response: Response, _: None = Depends(_allowed(NO_PARAMS))
    ) -> HealthResponse:
        """Calls each stage's cheap `health()`; 200 unless the Controller cannot answer."""
        handles = {
            "retrieval": self._retrieval,
            "features": self._features,
            "vector_search": self._vss,
            "ranking": self._ranking,
        }
        timeout = self._config.timeouts.health
        trace = RequestTrace()
        results = await asyncio.gather(
            *(
                self._call(name, h.health.remote(), timeout, trace, record=False)
                for name, h in handles.items()
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
        for name, (ok, payload) in zip(handles, results, strict=True):
            if ok and isinstance(payload, dict):
                stages[name] = StageHealth.model_validate(payload)
            else:
                reason = next((f.reason for f in trace.fallbacks if f.stage == name), "no answer")
                stages[name] = StageHealth(status="unavailable", detail={"error": reason})
        status = overall_status(stages)
        if status == "unavailable":
            response.status_code = 503
        return HealthResponse(status=status, stages=stages)

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

        async def user_then_vss() -> tuple[bool, dict[str, Any] | None, tuple[bool, Any]]:
            ok, user = await self._call(
                "features", self._features.user.remote(user_id), timeouts.features, trace
            )
            seeds = list((user or {}).get(LIKED) or [])[: counts.n_seeds]
            if not ok:
                trace.fail("vector_search", "skipped: no seeds without the user's features")
                return ok, user, (False, [])
            if user is None or not seeds or counts.vss == 0:
                return ok, user, (True, [])
            seen = sorted(set(user.get(SEEN) or ()) | exclude)
            vss = await self._call(
                "vector_search",
                self._vss.recommend.remote(seeds, counts.vss, seen, genres or None, year_range),
                timeouts.vector_search,
                trace,
            )
            return ok, user, vss

        async def retrieve() -> tuple[bool, Any]:
            if counts.retrieval == 0:
                return True, ([], [])
            return await self._call(
                "retrieval",
                self._retrieval.recommend.remote(user_id, counts.retrieval),
                timeouts.retrieval,
                trace,
            )

        retrieval_task = asyncio.ensure_future(retrieve())
        features_ok, user, (vss_ok, vss_hits) = await user_then_vss()
        if features_ok and user is None:
            retrieval_task.cancel()
            return self._cold_start(user_id, k, genres, exclude, year_range, trace)
        retrieval_ok, retrieved = await retrieval_task

        seen: set[int] = set((user or {}).get(SEEN) or ())
        lists: dict[str, list[tuple[int, float]]] = {}
        if retrieval_ok and retrieved is not None:
            ids, scores = retrieved
            lists[SOURCE_RETRIEVAL] = [
                (m, s) for m, s in zip(ids, scores, strict=True) if m not in seen
            ]
        if vss_ok and vss_hits:
            lists[SOURCE_VSS] = list(vss_hits)
        if not retrieval_ok or not features_ok or not lists:
            lists[SOURCE_POPULAR] = self._popular(counts.popular, seen)
        merged = merge_candidates(lists, config.weights)
        candidates = self._filter(merged, seen, exclude, genres, year_range)
        if len(candidates) < k:
            candidates = self._fill_popular(candidates, k, seen, exclude, genres, year_range)
        candidates = candidates[: counts.max_ranked]

        scores = await self._rank(user_id, user, candidates, trace)
        if scores is None:
            scored = [self._catalog.item(c.movie_id, c.merged_score) for c in candidates]
        else:
            scored = [
                self._catalog.item(c.movie_id, float(s))
                for c, s in zip(candidates, scores, strict=True)
            ]
            scored.sort(key=lambda item: -item.score)
        top = apply_post_rules(scored, self._rules, self._catalog.newest_year, k, genres)
        sources = {c.movie_id: c.sources for c in candidates}
        return self._response(user_id, top, sources, trace, cold_start=False)

    async def _rank(
        self,
        user_id: int,
        user: dict[str, Any] | None,
        candidates: Sequence[Candidate],
        trace: RequestTrace,
    ) -> list[float] | None:
        """Ranker scores aligned with `candidates`, or None (fallback: merged order)."""
        if not candidates:
            return []
        timeouts = self._config.timeouts
        ids = [c.movie_id for c in candidates]
        movies = await self._candidate_features(ids, trace)
        if movies is None:
            trace.fail("ranking", "skipped: no candidate features; merged-score order")
            return None
        block = RankBlock(
            user_id=user_id,
            user={k: v for k, v in (user or {}).items() if k not in (LIKED, SEEN)},
            movie_ids=ids,
            movies=movies,
            candidates=candidate_columns(
                [c.source_scores for c in candidates],
                [c.source_ranks for c in candidates],
                [c.merged_score for c in candidates],
                SOURCES,
            ),
        )
        ok, scores = await self._call(
            "ranking", self._ranking.rank.remote(block), timeouts.ranking, trace
        )
        if not ok or scores is None or len(scores) != len(candidates):
            if ok:
                trace.fail("ranking", "wrong number of scores; merged-score order")
            return None
        return [float(s) for s in scores]

    async def _candidate_features(
        self, ids: list[int], trace: RequestTrace
    ) -> dict[str, list[Any]] | None:
        """The candidates' movie features (columnar): near cache first, then the Features
        deployment for the missing rows only. None when they cannot be read."""
        found, missing = self._movie_cache.get_many(ids, time.monotonic())
        names = self._movie_feature_names
        if missing or names is None:
            ok, columns = await self._call(
                "candidate_features",
                self._features.movies.remote(missing or ids),
                self._config.timeouts.candidate_features,
                trace,
            )
            if not ok:
                return None
            self._remember_movies(missing or ids, columns)
            names = list(columns)
            found.update(
                {m: {n: columns[n][row] for n in names} for row, m in enumerate(missing or ids)}
            )
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
            filler.source_scores[SOURCE_POPULAR] = item.score
            filler.source_ranks[SOURCE_POPULAR] = rank
            filler.merged_score = floor * 0.5 / rank  # below every real candidate
            out.append(filler)
        return out

    def _cold_start(
        self,
        user_id: int,
        k: int,
        genres: list[str],
        exclude: set[int],
        year_range: tuple[int | None, int | None] | None,
        trace: RequestTrace,
    ) -> RecommendationResponse:
        items = self._catalog.cold_start(
            k, self._rules, exclude=exclude, genres=genres or None, year_range=year_range
        )
        sources = {item.movie_id: [SOURCE_POPULAR] for item in items}
        return self._response(user_id, items, sources, trace, cold_start=True)

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


__all__ = ["CatchAllMiddleware", "Controller", "RequestTrace", "app", "manifest_version"]
