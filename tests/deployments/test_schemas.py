"""The Controller's request validation helpers and response models (pure)."""

from __future__ import annotations

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from deployments.schemas import (
    K_MAX,
    RECOMMENDATION_PARAMS,
    Fallback,
    HealthResponse,
    RecommendationResponse,
    RecommendedMovie,
    SimilarMovie,
    StageHealth,
    check_genres,
    check_query_params,
    check_year_range,
    overall_status,
)


def _movie(movie_id: int = 1) -> RecommendedMovie:
    return RecommendedMovie(
        movie_id=movie_id,
        title="Toy Story",
        genres=["Animation"],
        year=1995,
        score=0.5,
        sources=["retrieval"],
    )


def test_unknown_query_parameters_are_rejected_with_their_names() -> None:
    check_query_params(["k", "genres", "genres"], RECOMMENDATION_PARAMS)
    with pytest.raises(RequestValidationError) as caught:
        check_query_params(["k", "foo", "Genres"], RECOMMENDATION_PARAMS)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [("query", "Genres"), ("query", "foo")]
    assert all(e["type"] == "extra_forbidden" for e in errors)
    assert "allowed: exclude, genres, k, year_max, year_min" in errors[0]["msg"]


def test_no_parameters_allowed_says_none() -> None:
    with pytest.raises(RequestValidationError) as caught:
        check_query_params(["x"], frozenset())
    assert "allowed: none" in caught.value.errors()[0]["msg"]


def test_genres_are_checked_against_the_catalog_and_deduplicated() -> None:
    known = frozenset({"Comedy", "Drama", "Children's"})
    assert check_genres(["Drama", "Children's", "Drama"], known) == ["Drama", "Children's"]
    assert check_genres([], known) == []
    with pytest.raises(RequestValidationError) as caught:
        check_genres(["Drama", "comedy", "Nope"], known)
    (error,) = caught.value.errors()
    assert error["loc"] == ("query", "genres")
    assert "['comedy', 'Nope']" in error["msg"]
    assert "Children's" in error["msg"]


def test_year_range_must_be_ordered() -> None:
    check_year_range(None, 1990)
    check_year_range(1990, 1990)
    with pytest.raises(RequestValidationError):
        check_year_range(1999, 1990)


def test_response_models_enforce_their_bounds() -> None:
    response = RecommendationResponse(user_id=1, items=[_movie()], model_version="v1", fallbacks=[])
    assert response.degraded is False
    assert response.cold_start is False
    assert response.model_dump()["items"][0]["sources"] == ["retrieval"]
    with pytest.raises(ValidationError):
        RecommendationResponse(
            user_id=1, items=[_movie(i) for i in range(1, K_MAX + 2)], model_version="v"
        )
    with pytest.raises(ValidationError):
        RecommendationResponse(user_id=0, items=[], model_version="v")
    with pytest.raises(ValidationError):
        RecommendedMovie(movie_id=1, title="x", genres=[], year=1200, score=0.0, sources=[])
    with pytest.raises(ValidationError):
        SimilarMovie(movie_id=1, title="x", genres=[], year=None, score=2.0)
    with pytest.raises(ValidationError):
        Fallback(stage="ranking", reason="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):  # extra fields are refused, not dropped
        RecommendationResponse(user_id=1, items=[], model_version="v", extra=1)  # type: ignore[call-arg]


def test_overall_status() -> None:
    ok = StageHealth(status="ok", pid=1)
    down = StageHealth(status="unavailable", detail={"error": "timeout"})
    assert overall_status({"controller": ok, "ranking": ok}) == "ok"
    assert overall_status({"controller": ok, "ranking": down}) == "degraded"
    assert overall_status({"controller": down, "ranking": ok}) == "unavailable"
    health = HealthResponse(status="degraded", stages={"controller": ok, "ranking": down})
    assert health.stages["ranking"].detail == {"error": "timeout"}
