"""The HTTP API's request limits and response models (pydantic, with bounds).

Pure: no Ray, no I/O. The Controller builds these; FastAPI validates and documents them
(OpenAPI at `/docs`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

K_DEFAULT = 10
K_MAX = 100
MAX_GENRES = 10
MAX_EXCLUDE = 200
ID_MAX = 2**31 - 1
YEAR_MIN = 1800
YEAR_MAX = 2200

RECOMMENDATION_PARAMS = frozenset({"k", "genres", "exclude", "year_min", "year_max"})
SIMILAR_PARAMS = frozenset({"k"})
NO_PARAMS: frozenset[str] = frozenset()

StageName = Literal["retrieval", "content", "itemcf", "features", "ranking"]

FallbackReason = Literal[
    "timeout", "unavailable", "overloaded", "error", "no_budget", "skipped", "bad_output"
]
"""Why a stage's output was not used (a small fixed set: safe as a metric label).

* ``timeout``: the stage missed its deadline;
* ``unavailable``: it cannot answer (Redis down, model not loaded, replica gone);
* ``overloaded``: its queue was full (Serve backpressure);
* ``error``: it raised anything else (the detail goes to the logs, never to clients);
* ``no_budget``: the request's total budget was spent before the stage could be called;
* ``skipped``: not called, because a stage it depends on failed;
* ``bad_output``: it answered something unusable (e.g. the wrong number of scores).
"""
FALLBACK_REASONS: tuple[str, ...] = get_args(FallbackReason)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Fallback(_Model):
    """A stage that failed or timed out, and what was served instead of its output."""

    stage: StageName = Field(examples=["ranking"])
    reason: FallbackReason = Field(examples=["timeout"])


class RecommendedMovie(_Model):
    """One recommended movie."""

    movie_id: int = Field(ge=1, le=ID_MAX)
    title: str = Field(max_length=500)
    genres: list[str] = Field(max_length=50)
    year: int | None = Field(default=None, ge=YEAR_MIN, le=YEAR_MAX)
    score: float = Field(description="Ranking score after boosts; higher is better.")
    sources: list[str] = Field(
        max_length=10,
        description='Candidate sources that proposed it: "retrieval", "content", "popular".',
    )


class RecommendationResponse(_Model):
    """`GET /recommendations/{user_id}`."""

    user_id: int = Field(ge=1, le=ID_MAX)
    items: list[RecommendedMovie] = Field(max_length=K_MAX)
    model_version: str = Field(max_length=200)
    degraded: bool = Field(
        default=False, description="True when a stage failed and a fallback was served."
    )
    fallbacks: list[Fallback] = Field(default_factory=list, max_length=20)
    cold_start: bool = Field(
        default=False, description="True for an unknown user: popular, genre-diverse movies."
    )


class SimilarMovie(_Model):
    """One neighbour of a movie."""

    movie_id: int = Field(ge=1, le=ID_MAX)
    title: str = Field(max_length=500)
    genres: list[str] = Field(max_length=50)
    year: int | None = Field(default=None, ge=YEAR_MIN, le=YEAR_MAX)
    score: float = Field(ge=-1.0001, le=1.0001, description="Cosine similarity.")


class SimilarResponse(_Model):
    """`GET /movies/{movie_id}/similar`."""

    movie_id: int = Field(ge=1, le=ID_MAX)
    items: list[SimilarMovie] = Field(max_length=K_MAX)


class StageHealth(_Model):
    """One stage's health."""

    status: Literal["ok", "degraded", "unavailable"]
    pid: int | None = None
    detail: dict[str, Any] = Field(default_factory=dict)


class HealthResponse(_Model):
    """`GET /healthz`: "ok" only when every stage is."""

    status: Literal["ok", "degraded", "unavailable"]
    stages: dict[str, StageHealth]

    def statuses_only(self) -> HealthResponse:
        """The same health without pids and details (for unauthenticated callers)."""
        return HealthResponse(
            status=self.status,
            stages={name: StageHealth(status=s.status) for name, s in self.stages.items()},
        )


class ErrorResponse(_Model):
    """Body of a 404 or 500 (422s have FastAPI's `detail` list)."""

    detail: str


def overall_status(stages: Mapping[str, StageHealth]) -> Literal["ok", "degraded", "unavailable"]:
    """ "ok" if every stage is ok; "unavailable" if the Controller itself is not; else
    "degraded" (the API still answers, with fallbacks)."""
    if all(s.status == "ok" for s in stages.values()):
        return "ok"
    controller = stages.get("controller")
    if controller is not None and controller.status == "unavailable":
        return "unavailable"
    return "degraded"


def validation_error(param: str, message: str, value: Any, kind: str) -> RequestValidationError:
    """A 422 error shaped like FastAPI's own (`detail` list of `loc`/`msg`/`type`)."""
    return RequestValidationError(
        [{"type": kind, "loc": ("query", param), "msg": message, "input": value}]
    )


def check_query_params(params: Iterable[str], allowed: frozenset[str]) -> None:
    """Rejects query parameters the route does not define (FastAPI ignores them by default).

    Raises:
        RequestValidationError: One entry per unknown parameter.
    """
    unknown = sorted(set(params) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise RequestValidationError(
            [
                {
                    "type": "extra_forbidden",
                    "loc": ("query", name),
                    "msg": f"unknown query parameter {name!r}; allowed: {known}",
                    "input": None,
                }
                for name in unknown
            ]
        )


def check_year_range(year_min: int | None, year_max: int | None) -> None:
    """Raises a 422 when `year_min > year_max`."""
    if year_min is not None and year_max is not None and year_min > year_max:
        raise validation_error(
            "year_min",
            f"year_min ({year_min}) must not exceed year_max ({year_max})",
            year_min,
            "value_error",
        )


def check_genres(requested: Iterable[str], known: frozenset[str]) -> list[str]:
    """The requested genres, deduplicated in order; 422 on one the catalog lacks."""
    genres = list(dict.fromkeys(requested))
    unknown = [g for g in genres if g not in known]
    if unknown:
        raise validation_error(
            "genres",
            f"unknown genre(s) {unknown}; known genres: {sorted(known)}",
            unknown,
            "value_error",
        )
    return genres
