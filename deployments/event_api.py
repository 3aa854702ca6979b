"""`POST /events`: the feedback route, its request schema and validation.

Validation is all-or-nothing: any invalid event rejects the whole request with HTTP 422,
FastAPI's `detail` list whose `loc` names the event and the field
(`["body", "events", 3, "value"]`) and whose `msg` says what is wrong. Then the Events stage
logs them durably: HTTP 202 `{"accepted", "duplicates"}`, or 503 with `Retry-After` when
the log cannot take them (the client retries with the same `event_id`s).

No `from __future__ import annotations` here: FastAPI resolves the annotations at runtime.
"""

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
)

from deployments.catalog import Catalog
from deployments.observability.feedback import FeedbackMetrics
from deployments.openapi import with_model
from deployments.schemas import ID_MAX, NO_PARAMS, ErrorResponse
from deployments.security import API_KEY_HEADER
from deployments.stages import EventsStage
from movierec.events import (
    MAX_EVENT_ID,
    MAX_EVENTS,
    RATING_MAX,
    RATING_MIN,
    Event,
    EventType,
    RateLimitedError,
)

logger = logging.getLogger(__name__)

EVENTS_PATH = "/events"
EVENTS_MAX_BODY_BYTES = 256 * 1024
"""The body cap of `POST /events` (500 events of ~200 bytes each fit; the other routes keep
`MOVIEREC_MAX_BODY_BYTES`)."""
MAX_FUTURE_S = 86_400.0
"""A client timestamp at most this far ahead of the server's clock (skew), else 422."""
RETRY_AFTER_S = 1


def _json_integer(value: Any) -> Any:
    """A JSON integer: JSON Schema counts 42.0 as one; booleans and strings are not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class EventIn(BaseModel):
    """One feedback event as a client posts it."""

    model_config = ConfigDict(extra="forbid")

    event_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_EVENT_ID,
        pattern=r"^[\x21-\x7e]+$",
        description="Client id for deduplication (printable ASCII, no spaces); "
        "omitted: the event is not deduplicated.",
    )
    user_id: Annotated[StrictInt, BeforeValidator(_json_integer)] = Field(ge=1, le=ID_MAX)
    movie_id: Annotated[StrictInt, BeforeValidator(_json_integer)] = Field(
        ge=1, le=ID_MAX, description="A movie of the catalog."
    )
    type: EventType
    value: float | None = Field(
        default=None,
        validate_default=True,
        description=f"The rating ({RATING_MIN}..{RATING_MAX}), required for `rating` and "
        "refused for other types.",
    )
    timestamp: str | float | None = Field(
        default=None,
        description="When it happened: ISO 8601 (no offset: UTC) or epoch seconds; "
        "omitted: when received.",
    )

    @field_validator("value", mode="before")
    @classmethod
    def _value_for_type(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("type")
        if kind is None:  # the type itself is invalid: reported there
            return value
        if kind != "rating":
            if value is not None:
                raise ValueError(f"value is only allowed for rating events, not {kind}")
            return None
        if value is None:
            raise ValueError("value is required for rating events")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("value must be a number")
        if not math.isfinite(value) or not RATING_MIN <= value <= RATING_MAX:
            raise ValueError(f"rating value must be within {RATING_MIN}..{RATING_MAX}")
        return float(value)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _timestamp(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("timestamp must be ISO 8601 text or epoch seconds")
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"timestamp {value[:40]!r} is not ISO 8601") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
        elif isinstance(value, int | float) and math.isfinite(value):
            seconds = float(value)
        else:
            raise ValueError("timestamp must be ISO 8601 text or epoch seconds")
        if not 0.0 < seconds <= time.time() + MAX_FUTURE_S:
            raise ValueError("timestamp must be after 1970 and not in the future")
        return seconds


class EventsRequest(BaseModel):
    """The body of `POST /events`."""

    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS)


class EventsForgotten(BaseModel):
    """`DELETE /users/{user_id}/events`: what was removed."""

    user_id: int
    events: int = Field(ge=0, description="The user's raw events deleted from the event log.")
    movies: int = Field(
        ge=0, description="Movies whose event-driven features were removed for the user."
    )


class EventsAccepted(BaseModel):
    """HTTP 202: the events are durably logged (applied within about a second)."""

    accepted: int = Field(ge=0, description="Events newly logged.")
    duplicates: int = Field(ge=0, description="Events whose event_id was seen before.")


def to_events(request: EventsRequest, catalog: Catalog) -> list[Event]:
    """The validated events (unknown movies: HTTP 422 naming each).

    Raises:
        RequestValidationError: An event names a movie the catalog does not have.
    """
    unknown = [
        {
            "type": "value_error",
            "loc": ("body", "events", i, "movie_id"),
            "msg": f"unknown movie {event.movie_id}",
            "input": event.movie_id,
        }
        for i, event in enumerate(request.events)
        if event.movie_id not in catalog
    ]
    if unknown:
        raise RequestValidationError(unknown, body=request.model_dump())
    now = time.time()
    return [
        Event(
            user_id=event.user_id,
            movie_id=event.movie_id,
            type=event.type,
            value=event.value,
            timestamp=now if event.timestamp is None else float(event.timestamp),
            received=now,
            event_id=event.event_id,
        )
        for event in request.events
    ]


def add_event_routes(
    app: FastAPI,
    events: EventsStage,
    catalog: Catalog,
    protected: Sequence[DependsParam],
    errors: dict[int | str, dict[str, Any]],
    no_params: Any,
    metrics: FeedbackMetrics | None = None,
    model_version: Callable[[], str] = lambda: "",
) -> None:
    """Adds `POST /events` and `DELETE /users/{user_id}/events` to the API (`create_app`).

    With `metrics`, every posted event is counted by type and outcome (a rejected request's
    events too, read from its body), and accepted impressions and clicks under the
    `model_version()` this replica serves.
    """

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        if metrics is not None and request.method == "POST" and request.url.path == EVENTS_PATH:
            metrics.failed(posted_types(exc.body), "rejected")
        return await request_validation_exception_handler(request, exc)

    @app.post(
        EVENTS_PATH,
        status_code=202,
        response_model=EventsAccepted,
        responses={
            **errors,
            429: {
                "model": ErrorResponse,
                "description": "Too many events for this key: retry later.",
            },
            503: with_model(503, ErrorResponse, "The event log is unavailable: retry later."),
        },
        dependencies=[*protected, Depends(no_params(NO_PARAMS))],
        summary="Post feedback events (ratings, watches, clicks, impressions, dismissals)",
    )
    async def post_events(request: Request, body: EventsRequest) -> EventsAccepted | JSONResponse:
        """Logs 1..500 events durably; the next recommendations reflect them within about a
        second. A repeated `event_id` (within the deduplication window) is not counted again."""
        validated = to_events(body, catalog)
        types = [event.type for event in validated]
        try:
            result = await events.ingest(validated, client_id(request.headers.get(API_KEY_HEADER)))
        except RateLimitedError as exc:
            if metrics is not None:
                metrics.failed(types, "rate_limited")
            return JSONResponse(
                {"detail": f"too many events; retry after {exc.retry_after_s} s"},
                status_code=429,
                headers={"Retry-After": str(exc.retry_after_s)},
            )
        except Exception as exc:
            logger.warning("events not logged: %s", type(exc).__name__)
            if metrics is not None:
                metrics.failed(types, "unavailable")
            return _unavailable("the event log is unavailable; retry with the same event_ids")
        if metrics is not None:
            metrics.posted(types, result, model_version())
        return EventsAccepted(accepted=result.accepted, duplicates=result.duplicates)

    @app.delete(
        "/users/{user_id}/events",
        response_model=EventsForgotten,
        responses={
            **errors,
            503: with_model(503, ErrorResponse, "The event store is unavailable: retry later."),
        },
        dependencies=[*protected, Depends(no_params(NO_PARAMS))],
        summary="Delete a user's events and event-driven features",
    )
    async def forget_user(
        user_id: Annotated[int, Path(ge=1, le=ID_MAX, description="MovieLens user id.")],
    ) -> EventsForgotten | JSONResponse:
        """Removes the user's logged events and the features they moved (the user is back
        to the build's features, or unknown again). Needs the API key when auth is on."""
        try:
            result = await events.forget(user_id)
        except Exception as exc:
            logger.warning("events of a user not deleted: %s", type(exc).__name__)
            return _unavailable("the event store is unavailable; retry later")
        return EventsForgotten(user_id=user_id, events=result.events, movies=result.movies)


def posted_types(body: Any) -> list[object]:
    """The `type` of each event of a rejected request's body (whatever it holds); a body
    without a readable event list counts as one event of no type ("other")."""
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not events:
        return [None]
    return [event.get("type") if isinstance(event, dict) else None for event in events]


def client_id(api_key: str | None) -> str:
    """Who posts, for the rate limit: a digest of the API key (never the key), or
    "anonymous" without one."""
    if not api_key:
        return "anonymous"
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )
