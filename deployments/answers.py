"""The API's answers built from the catalog: recommendations and similar movies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deployments.catalog import Catalog
from deployments.schemas import (
    Fallback,
    RecommendationResponse,
    RecommendedMovie,
    SimilarMovie,
    SimilarResponse,
)
from movierec.payloads import ScoredMovies
from movierec.rules import Item


def recommendation(
    catalog: Catalog,
    user_id: int,
    items: Sequence[Item],
    sources: Mapping[int, list[str]],
    *,
    model_version: str,
    fallbacks: list[Fallback],
    cold_start: bool,
) -> RecommendationResponse:
    """The answer of `GET /recommendations/{user_id}`: `items` in order, with the catalog's
    titles, genres and years; `degraded` when any stage has a fallback entry."""
    out = []
    for item in items:
        movie = catalog.movies[item.movie_id]
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
        model_version=model_version,
        degraded=bool(fallbacks),
        fallbacks=fallbacks,
        cold_start=cold_start,
    )


def similar(catalog: Catalog, movie_id: int, hits: ScoredMovies, k: int) -> SimilarResponse:
    """The answer of `GET /movies/{movie_id}/similar`: neighbours the catalog knows, best
    first, at most `k`."""
    items = []
    for neighbour, score in hits.pairs():
        movie = catalog.movies.get(neighbour)
        if movie is None:
            continue
        items.append(
            SimilarMovie(
                movie_id=neighbour,
                title=movie.title,
                genres=list(movie.genres),
                year=movie.year,
                score=score,
            )
        )
    return SimilarResponse(movie_id=movie_id, items=items[:k])
