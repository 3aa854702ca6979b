"""KNN queries against the movie vector index, shared by offline evaluation and serving.

The query logic is written once, as I/O-free *plans*: generators that yield the batch of Redis
commands they need next, receive the replies, and finally return their result. The sync and
async clients of `models.content.client` only execute them, so neither duplicates any logic.

Queries (RediSearch DIALECT 2, parameterized, only the needed fields returned)::

    FT.SEARCH movies "@movie_id:[$id $id]" PARAMS 2 id 50 RETURN 1 embedding LIMIT 0 1
    FT.SEARCH movies "(@genres:{$g0|$g1} @year:[$ylo $yhi])=>[KNN $K @embedding $vec AS dist]"
        PARAMS ... RETURN 2 movie_id dist SORTBY dist ASC LIMIT 0 K DIALECT 2

Filter values travel as PARAMS, never spliced into the query string, so genre names with
punctuation ("Children's", "Film-Noir", "Sci-Fi") need no escaping and cannot inject syntax.

Scores are cosine similarities in [-1, 1] (RediSearch returns the cosine distance 1 - cos).

Seen-movie exclusion never shrinks a result below k (when k eligible movies exist) and never
leaks an excluded id. Up to `EXCLUSION_FILTER_ABOVE` excluded ids, the KNN over-fetches
K = k + |excluded| and drops them client-side; beyond that, they are excluded inside the KNN by
a TAG filter ``-@movie_id_tag:{12|50|...}`` (hybrid query, K = k), which costs far less than
returning hundreds of extra neighbours (ml-100k, 300 excluded ids: 0.5 ms instead of 1.7 ms).
Either way the results are post-checked client-side.

Replies are parsed in both RESP2 and RESP3 form; vectors are binary, so clients must not
decode responses.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np

from models.content.index import GENRE_SEPARATOR, ID_TAG

Aggregation = Literal["max", "sum"]
YearRange = tuple[int | None, int | None]
Command = tuple[Any, ...]
T = TypeVar("T")
Plan = Generator[list[Command], list[Any], T]
"""An I/O-free query: yields a batch of commands, receives their replies, returns a value."""

DEFAULT_ALIAS = "movies"
EXCLUSION_FILTER_ABOVE = 24
"""Exclusion sets larger than this become a filter in the KNN instead of an over-fetch
(measured crossover on ml-100k: about 20 ids)."""
_DIST = "dist"
_META_FIELDS = ("title", "year", "genres")


class MovieNotFoundError(LookupError):
    """The movie id is not in the vector index (the API maps this to HTTP 404)."""

    def __init__(self, movie_id: int) -> None:
        super().__init__(f"movie {movie_id} is not in the vector index")
        self.movie_id = movie_id


@dataclass(frozen=True, slots=True)
class ScoredMovie:
    """One search result.

    Attributes:
        movie_id: MovieLens movie id.
        score: Cosine similarity, or the seed aggregate of cosine similarities.
        title: Title without year (only when metadata was requested).
        year: Release year, None when unknown or not requested.
        genres: Genre names (empty when not requested).
    """

    movie_id: int
    score: float
    title: str | None = None
    year: int | None = None
    genres: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """Attribute filter applied inside the KNN (pre-filtering, not post-filtering).

    Attributes:
        genres: Keep movies having any (`genre_match="any"`) or all of these genres;
            matching is case-insensitive. None or empty: no genre filter.
        year_range: Inclusive (min_year, max_year); either bound may be None (open).
            Movies without a year never match a year filter.
        genre_match: "any" or "all".
        exclude_ids: Movie ids the KNN must skip.
    """

    genres: tuple[str, ...] | None = None
    year_range: YearRange | None = None
    genre_match: Literal["any", "all"] = "any"
    exclude_ids: tuple[int, ...] = ()

    @classmethod
    def of(
        cls,
        genres: Iterable[str] | None = None,
        year_range: YearRange | None = None,
        genre_match: Literal["any", "all"] = "any",
    ) -> SearchFilter:
        """Builds a filter from loosely typed arguments."""
        return cls(tuple(genres) if genres else None, year_range, genre_match)

    def clause(self) -> tuple[str, list[Any]]:
        """Returns the RediSearch filter expression and its PARAMS (name, value, ...)."""
        terms: list[str] = []
        params: list[Any] = []
        if self.genres:
            names = [f"g{i}" for i in range(len(self.genres))]
            for name, genre in zip(names, self.genres, strict=True):
                params += [name, genre]
            if self.genre_match == "all":
                terms += [f"@genres:{{${name}}}" for name in names]
            else:
                terms.append("@genres:{" + "|".join(f"${name}" for name in names) + "}")
        if self.year_range is not None:
            low, high = self.year_range
            terms.append("@year:[$ylo $yhi]")
            params += ["ylo", "-inf" if low is None else int(low)]
            params += ["yhi", "+inf" if high is None else int(high)]
        if self.exclude_ids:  # integers we format ourselves: nothing to escape
            ids = "|".join(str(int(i)) for i in self.exclude_ids)
            terms.append(f"-@{ID_TAG}:{{{ids}}}")
        return (f"({' '.join(terms)})" if terms else "*"), params


# --------------------------------------------------------------------------------------
# Plans: pure query logic (command building, reply parsing, aggregation), no I/O.
# --------------------------------------------------------------------------------------


def vector_command(index: str, movie_id: int) -> Command:
    """FT.SEARCH command fetching one movie's embedding through the index (or alias)."""
    return (
        "FT.SEARCH", index, "@movie_id:[$id $id]",
        "PARAMS", 2, "id", int(movie_id),
        "RETURN", 1, "embedding",
        "LIMIT", 0, 1,
        "DIALECT", 2,
    )  # fmt: skip


def knn_command(
    index: str,
    vector: np.ndarray,
    k: int,
    search_filter: SearchFilter | None = None,
    *,
    ef_runtime: int | None = None,
    with_metadata: bool = False,
) -> Command:
    """FT.SEARCH command for the `k` nearest movies of a vector, filter applied in the KNN.

    Args:
        index: Index name or alias.
        vector: Query vector of shape (dim,); need not be normalized (COSINE).
        k: Number of neighbours (K of the KNN and LIMIT).
        search_filter: Attribute filter, or None.
        ef_runtime: HNSW EF_RUNTIME for this query; None uses the index default.
        with_metadata: Also return title, year and genres.

    Returns:
        The command tuple, for `execute_command`.
    """
    where, params = (search_filter or SearchFilter()).clause()
    ef = " EF_RUNTIME $ef" if ef_runtime else ""
    query = f"{where}=>[KNN $K @embedding $vec{ef} AS {_DIST}]"
    params += ["K", int(k), "vec", np.ascontiguousarray(vector, dtype="<f4").tobytes()]
    if ef_runtime:
        params += ["ef", int(ef_runtime)]
    fields = ("movie_id", _DIST, *(_META_FIELDS if with_metadata else ()))
    return (
        "FT.SEARCH", index, query,
        "PARAMS", len(params), *params,
        "RETURN", len(fields), *fields,
        "SORTBY", _DIST, "ASC",
        "LIMIT", 0, int(k),
        "DIALECT", 2,
    )  # fmt: skip


def parse_search(reply: Any) -> list[dict[str, Any]]:
    """Parses an FT.SEARCH reply (RESP2 list or RESP3 map) into one field dict per document.

    Field names are str; values are bytes (or str for RESP3 clients decoding nothing).
    """
    if isinstance(reply, dict):
        results = reply.get(b"results") or reply.get("results") or []
        docs = []
        for result in results:
            attrs = result.get(b"extra_attributes") or result.get("extra_attributes") or {}
            docs.append({_text(k): v for k, v in attrs.items()})
        return docs
    docs = []
    for fields in reply[2::2]:
        docs.append({_text(k): v for k, v in zip(fields[::2], fields[1::2], strict=True)})
    return docs


def parse_neighbours(reply: Any) -> list[ScoredMovie]:
    """Parses a `knn_command` reply into results, nearest first (score = 1 - distance)."""
    out = []
    for doc in parse_search(reply):
        genres = doc.get("genres")
        year = doc.get("year")
        title = doc.get("title")
        out.append(
            ScoredMovie(
                movie_id=int(doc["movie_id"]),
                score=1.0 - float(doc[_DIST]),
                title=_text(title) if title is not None else None,
                year=int(year) if year is not None else None,
                genres=tuple(_text(genres).split(GENRE_SEPARATOR)) if genres else (),
            )
        )
    return out


def fetch_vectors_plan(index: str, movie_ids: Sequence[int]) -> Plan[dict[int, np.ndarray]]:
    """Plan: embeddings of movies, read through the index/alias (one pipelined round trip).

    Returns:
        movie_id -> float32 vector of shape (dim,); ids not in the index are absent.
    """
    replies = yield [vector_command(index, movie_id) for movie_id in movie_ids]
    vectors = {}
    for movie_id, reply in zip(movie_ids, replies, strict=True):
        docs = parse_search(reply)
        if docs and "embedding" in docs[0]:
            vectors[int(movie_id)] = np.frombuffer(docs[0]["embedding"], dtype="<f4").copy()
    return vectors


def knn_plan(
    index: str,
    vector: np.ndarray,
    k: int,
    *,
    exclude_ids: Collection[int] = (),
    search_filter: SearchFilter | None = None,
    ef_runtime: int | None = None,
    with_metadata: bool = False,
    exclusion_filter_above: int = EXCLUSION_FILTER_ABOVE,
) -> Plan[list[ScoredMovie]]:
    """Plan: the `k` nearest movies to a vector, none of them in `exclude_ids`.

    Exclusion by over-fetch or by filter, see the module docstring.
    """
    if k <= 0:
        return []
    excluded = {int(i) for i in exclude_ids}
    fetch, where = _exclusion(k, excluded, search_filter, exclusion_filter_above)
    (reply,) = yield [
        knn_command(index, vector, fetch, where, ef_runtime=ef_runtime, with_metadata=with_metadata)
    ]
    hits = [hit for hit in parse_neighbours(reply) if hit.movie_id not in excluded]
    return _top(hits, k)


def _exclusion(
    k: int, excluded: set[int], search_filter: SearchFilter | None, filter_above: int
) -> tuple[int, SearchFilter | None]:
    """KNN size and filter that yield k non-excluded movies (when that many exist)."""
    if len(excluded) <= filter_above:
        return k + len(excluded), search_filter
    return k, replace(search_filter or SearchFilter(), exclude_ids=tuple(sorted(excluded)))


def similar_movies_plan(
    index: str,
    movie_id: int,
    k: int,
    *,
    search_filter: SearchFilter | None = None,
    ef_runtime: int | None = None,
    with_metadata: bool = True,
) -> Plan[list[ScoredMovie]]:
    """Plan: the `k` nearest neighbours of one movie, excluding itself.

    Raises:
        MovieNotFoundError: `movie_id` is not in the index.
    """
    vectors = yield from fetch_vectors_plan(index, [movie_id])
    if movie_id not in vectors:
        raise MovieNotFoundError(movie_id)
    return (
        yield from knn_plan(
            index,
            vectors[movie_id],
            k,
            exclude_ids={movie_id},
            search_filter=search_filter,
            ef_runtime=ef_runtime,
            with_metadata=with_metadata,
        )
    )


def recommend_for_seeds_plan(
    index: str,
    seed_movie_ids: Sequence[int],
    k: int,
    *,
    exclude_ids: Collection[int] = (),
    seed_weights: Sequence[float] | None = None,
    aggregation: Aggregation = "max",
    exclude_seeds: bool = True,
    search_filter: SearchFilter | None = None,
    ef_runtime: int | None = None,
    with_metadata: bool = False,
    exclusion_filter_above: int = EXCLUSION_FILTER_ABOVE,
) -> Plan[list[ScoredMovie]]:
    """Plan: the `k` movies nearest to a set of seed movies (see `recommend_for_seeds`)."""
    weights = _seed_weights(seed_movie_ids, seed_weights)
    if k <= 0 or not weights:
        return []
    vectors = yield from fetch_vectors_plan(index, list(weights))
    known = {movie_id: w for movie_id, w in weights.items() if movie_id in vectors}
    if not known:
        return []
    excluded = {int(i) for i in exclude_ids} | (set(weights) if exclude_seeds else set())

    if aggregation == "sum":
        # sum_s w_s cos(s, x) with sum_s w_s = 1 equals c . x for the weighted centroid
        # c = sum_s w_s e_s (unit e_s, x), i.e. |c| * cos(c, x): one exact KNN on c.
        seeds = list(known)
        weight = np.array([known[movie_id] for movie_id in seeds], dtype=np.float64)
        matrix = np.stack([vectors[movie_id] for movie_id in seeds]).astype(np.float64)
        centroid = (weight / weight.sum()) @ matrix
        norm = float(np.linalg.norm(centroid))
        if norm == 0.0:
            return []
        hits = yield from knn_plan(
            index,
            np.asarray(centroid / norm, dtype=np.float32),
            k,
            exclude_ids=excluded,
            search_filter=search_filter,
            ef_runtime=ef_runtime,
            with_metadata=with_metadata,
            exclusion_filter_above=exclusion_filter_above,
        )
        return [_rescored(hit, hit.score * norm) for hit in hits]

    if aggregation != "max":
        raise ValueError(f"aggregation must be 'max' or 'sum', not {aggregation!r}")
    # max_s w_s cos(s, x), w scaled so the largest weight is 1. Exact: a movie outside seed
    # s's k best non-excluded neighbours is beaten by k movies on s alone.
    top_weight = max(known.values())
    seeds = list(known)
    fetch, where = _exclusion(k, excluded, search_filter, exclusion_filter_above)
    replies = yield [
        knn_command(
            index,
            vectors[movie_id],
            fetch,
            where,
            ef_runtime=ef_runtime,
            with_metadata=with_metadata,
        )
        for movie_id in seeds
    ]
    best: dict[int, ScoredMovie] = {}
    for movie_id, reply in zip(seeds, replies, strict=True):
        scale = known[movie_id] / top_weight
        for hit in parse_neighbours(reply):
            if hit.movie_id in excluded:
                continue
            score = scale * hit.score
            if hit.movie_id not in best or score > best[hit.movie_id].score:
                best[hit.movie_id] = _rescored(hit, score)
    return _top(list(best.values()), k)


def _seed_weights(
    seed_movie_ids: Sequence[int], seed_weights: Sequence[float] | None
) -> dict[int, float]:
    if seed_weights is not None and len(seed_weights) != len(seed_movie_ids):
        raise ValueError("seed_weights must have one weight per seed")
    weights: dict[int, float] = {}
    for i, movie_id in enumerate(seed_movie_ids):
        weight = 1.0 if seed_weights is None else float(seed_weights[i])
        if not weight > 0:
            raise ValueError(f"seed weights must be positive, got {weight}")
        weights[int(movie_id)] = weights.get(int(movie_id), 0.0) + weight
    return weights


def _rescored(hit: ScoredMovie, score: float) -> ScoredMovie:
    return ScoredMovie(hit.movie_id, float(score), hit.title, hit.year, hit.genres)


def _top(hits: list[ScoredMovie], k: int) -> list[ScoredMovie]:
    return sorted(hits, key=lambda h: (-h.score, h.movie_id))[:k]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
