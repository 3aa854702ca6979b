"""The HTTP API (FastAPI): routes, validation and error shapes, over a `RecommendService`.

`create_app(service)` builds the app for the Ray Serve Controller (at replica start, see
`Controller.__serve_build_asgi_app__`) and for the single-process baseline of the
benchmarks alike: same routes, same validation, same errors.

No `from __future__ import annotations` here: FastAPI must resolve the route signatures'
annotations at runtime.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deployments.event_api import EVENTS_MAX_BODY_BYTES, EVENTS_PATH, add_event_routes
from deployments.observability.feedback import FeedbackMetrics
from deployments.openapi import (
    PROTOCOL_ERRORS,
    UNAUTHORIZED,
    genre_type,
    mount_docs,
    with_model,
)
from deployments.request import RecommendRequest
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
    HealthResponse,
    RecommendationResponse,
    SimilarResponse,
    check_genres,
    check_query_params,
    check_year_range,
)
from deployments.security import (
    API_KEY_HEADER,
    APIKeyGuard,
    BodyLimitMiddleware,
    SecurityPolicy,
)
from deployments.service import MovieNotFoundError, RecommendService, StageFailedError
from deployments.stages import EventsStage
from movierec.payloads import CandidateFilter

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


def _allowed(params: frozenset[str]) -> Callable[[Request], Awaitable[None]]:
    # async: FastAPI runs a sync dependency in a worker thread, a hand-off per request.
    async def reject_unknown(request: Request) -> None:
        check_query_params(request.query_params.keys(), params)

    return reject_unknown


def create_app(
    service: RecommendService,
    policy: SecurityPolicy | None = None,
    events: EventsStage | None = None,
    feedback: FeedbackMetrics | None = None,
) -> FastAPI:
    """The movierec HTTP API over `service`.

    Args:
        service: The recommendation flow.
        policy: Auth and body cap; None reads the settings (`SecurityPolicy.from_settings`,
            which refuses an insecure production configuration).
        events: The feedback log; None: no `POST /events` (the single-process baseline).
        feedback: Counts the posted events (by type and outcome) and the click-through rate.

    `/healthz` needs no key (load balancers and probes must reach it without secrets), but
    with auth on an unauthenticated caller sees only the statuses: pids and details need the
    key. `/docs` and `/openapi.json` stay open (they describe the API, they hold no data).

    The OpenAPI document describes this app as built (`deployments.openapi`): the `X-API-Key`
    scheme and 401 only when auth is on, the catalog's genres as an enum, and the answers
    of the HTTP front end (400, 414, 431) on every route.
    """
    policy = policy or SecurityPolicy.from_settings()
    guard = APIKeyGuard(policy)
    protected = [Depends(guard.dependency())]
    errors = {**PROTOCOL_ERRORS, **(UNAUTHORIZED if guard.enabled else {})}
    genre = genre_type(service.catalog.genres)
    app = FastAPI(
        title="movierec",
        version="0.1.0",
        description=(
            "Multi-stage movie recommendations: two-tower retrieval and content vector search "
            "candidates, Feast features, a batched ranker and business rules."
        ),
        docs_url=None,  # mount_docs: Swagger UI from an installed package, no CDN
        redoc_url=None,
    )
    mount_docs(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=policy.max_body_bytes,
        route_caps={EVENTS_PATH: EVENTS_MAX_BODY_BYTES},
    )
    app.add_middleware(CatchAllMiddleware)

    @app.get(
        "/recommendations/{user_id}",
        response_model=RecommendationResponse,
        responses=errors,
        dependencies=protected,
        summary="Top-k movies for a user",
    )
    async def recommendations(
        response: Response,
        user_id: Annotated[int, Path(ge=1, le=ID_MAX, description="MovieLens user id.")],
        k: Annotated[int, Query(ge=1, le=K_MAX, description="How many movies.")] = K_DEFAULT,
        genres: Annotated[
            list[genre] | None,  # type: ignore[valid-type]
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
        request = RecommendRequest(
            user_id=user_id,
            k=k,
            allowed=CandidateFilter(
                exclude=frozenset(exclude or ()),
                genres=tuple(check_genres(genres or [], service.catalog.genres)),
                year_range=None if year_min is None and year_max is None else (year_min, year_max),
            ),
        )
        result, trace = await service.recommend(request)
        response.headers["Server-Timing"] = trace.server_timing()
        return result

    @app.get(
        "/movies/{movie_id}/similar",
        response_model=SimilarResponse,
        responses={
            **errors,
            404: {"model": ErrorResponse, "description": "Unknown movie."},
            503: with_model(503, ErrorResponse, "Vector search unavailable, or overloaded."),
        },
        dependencies=protected,
        summary="Movies similar to a movie (content vector search)",
    )
    async def similar(
        movie_id: Annotated[int, Path(ge=1, le=ID_MAX, description="MovieLens movie id.")],
        k: Annotated[int, Query(ge=1, le=K_MAX)] = K_DEFAULT,
        _: None = Depends(_allowed(SIMILAR_PARAMS)),
    ) -> SimilarResponse | JSONResponse:
        """The movie's nearest neighbours by content embedding."""
        try:
            return await service.similar(movie_id, k)
        except MovieNotFoundError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except StageFailedError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.get(
        "/healthz",
        response_model=HealthResponse,
        responses={
            **PROTOCOL_ERRORS,
            503: with_model(503, HealthResponse, "Cannot answer, or overloaded."),
        },
        summary="Health of every stage",
    )
    async def healthz(
        request: Request, response: Response, _: None = Depends(_allowed(NO_PARAMS))
    ) -> HealthResponse:
        """Each stage's health; 200 unless the serving side itself cannot answer (503).
        With auth on, callers without the key see only the statuses."""
        health = await service.health()
        if health.status == "unavailable":
            response.status_code = 503
        if not guard.authorized(request.headers.get(API_KEY_HEADER)):
            return health.statuses_only()
        return health

    if events is not None:
        add_event_routes(
            app,
            events,
            service.catalog,
            protected,
            errors,
            _allowed,
            feedback,
            lambda: service.model_version,
        )
    return app


__all__ = ["CatchAllMiddleware", "create_app"]
