"""The content runtime: a user's liked movies -> seeds -> KNN -> `ScoredMovies`.

One implementation for serving (the Content deployment, on `AsyncRedisTransport`) and
evaluation (`models.content.offline`, `models.evaluation.report`, on `RedisTransport`, many
users per round trip). Like the queries, it builds plans and does no I/O itself::

    runtime = ContentRuntime(VectorSearch(alias), aggregation="sum")
    movies = await transport.run(runtime.candidates(liked, seen, 50, allowed, n_seeds=10))

What it decides: the seeds (the first `n_seeds` liked movies), what is excluded (the seeds,
the seen movies and the request's `allowed.exclude`), the genre and year filters (applied
inside the KNN, so they never shrink the answer below `n` when `n` movies qualify), the seed
aggregation, and the `max_k` bound of one request.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Sequence

from models.content.client import VectorSearch
from models.content.query import (
    Aggregation,
    MovieNotFoundError,
    Plan,
    ScoredMovie,
    SearchFilter,
)
from movierec.payloads import CandidateFilter, ScoredMovies

ANY = CandidateFilter()
"""A request that allows every movie."""


class ContentRuntime:
    """Content candidates and item-to-item neighbours, as plans.

    Args:
        search: The queries on the live index alias (and their HNSW knobs).
        aggregation: How seed similarities combine: "sum" (one KNN on the seeds' weighted
            centroid) or "max" (one KNN per seed); see `VectorSearch.recommend_for_seeds`.
        max_k: At most this many movies per request (None: no bound).
    """

    def __init__(
        self, search: VectorSearch, aggregation: Aggregation = "sum", max_k: int | None = None
    ) -> None:
        self.search = search
        self.aggregation = aggregation
        self.max_k = max_k

    def _bounded(self, k: int) -> int:
        return int(k) if self.max_k is None else min(int(k), self.max_k)

    def recommend(
        self,
        liked: Sequence[int],
        seen: Collection[int],
        n: int,
        allowed: CandidateFilter = ANY,
        *,
        n_seeds: int | None = None,
        seed_weights: Sequence[float] | None = None,
    ) -> Plan[list[ScoredMovie]]:
        """The `n` unseen movies nearest to the user's seeds, with their aggregated similarity.

        Args:
            liked: The user's liked movies, best first; the first `n_seeds` are the seeds.
            seen: Movies the user has rated (never returned).
            n: How many movies (bounded by `max_k`).
            allowed: The request's exclusions and genre/year filters.
            n_seeds: Seeds taken from `liked` (None: all of them).
            seed_weights: Positive weights aligned with `liked` (None: equal weights).

        Returns:
            A plan of up to `n` movies, best first; empty without seeds.
        """
        seeds = list(liked if n_seeds is None else liked[:n_seeds])
        weights = None
        if seed_weights is not None:
            weights = list(seed_weights if n_seeds is None else seed_weights[:n_seeds])
        if not seeds or n <= 0:
            return _nothing()
        exclude = (set(seen) | allowed.exclude) if allowed.exclude else seen
        return self.search.recommend_for_seeds(
            seeds,
            self._bounded(n),
            exclude,
            weights,
            aggregation=self.aggregation,
            search_filter=_search_filter(allowed),
        )

    def candidates(
        self,
        liked: Sequence[int],
        seen: Collection[int],
        n: int,
        allowed: CandidateFilter = ANY,
        *,
        n_seeds: int | None = None,
    ) -> Plan[ScoredMovies]:
        """`recommend` as the Content stage answers it: [<= n] ids and float32 similarities."""
        hits = yield from self.recommend(liked, seen, n, allowed, n_seeds=n_seeds)
        return _scored(hits)

    def similar(self, movie_id: int, k: int) -> Plan[ScoredMovies | None]:
        """A plan of the movie's `k` nearest neighbours (itself excluded, bounded by `max_k`),
        nearest first, scored by cosine similarity; None if the movie is not indexed."""
        try:
            hits = yield from self.search.similar_movies(
                movie_id, self._bounded(k), with_metadata=False
            )
        except MovieNotFoundError:
            return None
        return _scored(hits)


def _search_filter(allowed: CandidateFilter) -> SearchFilter | None:
    if not allowed.genres and allowed.year_range is None:
        return None
    return SearchFilter.of(allowed.genres, allowed.year_range)


def _scored(hits: list[ScoredMovie]) -> ScoredMovies:
    return ScoredMovies.of([hit.movie_id for hit in hits], [hit.score for hit in hits])


def _nothing() -> Generator[list[tuple[object, ...]], list[object], list[ScoredMovie]]:
    """A plan that sends nothing and finds nothing."""
    return []
    yield []  # a generator (never reached)
