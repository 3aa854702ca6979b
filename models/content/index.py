"""Redis vector index of the movie catalogue (RediSearch HNSW), versioned behind an alias.

Layout, for alias "movies" and version "v2" (see `IndexConfig`):

* Hash keys ``movie:v2:<movie_id>`` with fields movie_id, title, year (absent when unknown),
  genres ("|"-joined, absent when none) and embedding (384 float32, little-endian bytes).
* Index ``movies:v2`` ON HASH PREFIX ``movie:v2:`` with schema::

      movie_id  NUMERIC SORTABLE
      movie_id AS movie_id_tag TAG    (same field; for "-@movie_id_tag:{1|2|...}" exclusion)
      title     TEXT
      year      NUMERIC SORTABLE
      genres    TAG SEPARATOR "|"
      embedding VECTOR HNSW TYPE FLOAT32 DIM 384 DISTANCE_METRIC COSINE M 16 EF_CONSTRUCTION 200

* Alias ``movies`` -> ``movies:v2``. Queries only ever name the alias.

A rebuild (`build_index`) writes a *new* version under its own key prefix and index, waits
until every document is indexed, then moves the alias with one FT.ALIASUPDATE (atomic in
Redis), and only then drops the previous version. Queries therefore see either the old or the
new index in full, never a missing or half-built one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import redis

from models.content.embeddings import EMBEDDING_DIM, embedding_matrix

logger = logging.getLogger(__name__)

GENRE_SEPARATOR = "|"
ID_TAG = "movie_id_tag"
"""The movie_id hash field indexed a second time, as TAG, for exclusion filters."""
_VERSION_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class IndexConfig:
    """Names and HNSW parameters of the movie vector index.

    Attributes:
        alias: Name that queries use; points at the live version's index.
        key_prefix: Hash keys are ``{key_prefix}:{version}:{movie_id}``.
        dim: Vector dimension.
        m: HNSW graph degree (edges per node per layer).
        ef_construction: HNSW candidate list size while building.
        ef_runtime: Default HNSW candidate list size while querying (per query it is
            raised to at least the requested K by RediSearch).
    """

    alias: str = "movies"
    key_prefix: str = "movie"
    dim: int = EMBEDDING_DIM
    m: int = 16
    ef_construction: int = 200
    ef_runtime: int = 64

    def index_name(self, version: str) -> str:
        """Index name of one version, e.g. "movies:v2"."""
        _check_version(version)
        return f"{self.alias}:{version}"

    def prefix(self, version: str) -> str:
        """Hash key prefix of one version, e.g. "movie:v2:"."""
        _check_version(version)
        return f"{self.key_prefix}:{version}:"


@dataclass(frozen=True)
class IndexBuild:
    """Outcome of `build_index`.

    Attributes:
        index_name: The new (now live) index.
        version: Its version.
        num_docs: Documents indexed.
        previous: Index the alias pointed at before, or None.
        previous_dropped: Whether `previous` was dropped with its documents.
        load_seconds: Wall time of loading the hashes (indexing included).
    """

    index_name: str
    version: str
    num_docs: int
    previous: str | None
    previous_dropped: bool
    load_seconds: float


class IndexBuildError(RuntimeError):
    """The new index version could not be built; the alias was left untouched."""


def new_version() -> str:
    """Returns a fresh, sortable version string, e.g. "v20250101T120000123" (UTC, ms)."""
    now = time.time()
    return time.strftime("v%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}"


def create_index(
    client: redis.Redis, config: IndexConfig, version: str, initial_cap: int | None = None
) -> str:
    """Creates the (empty) index of one version with FT.CREATE.

    Args:
        client: Redis connection (server with the search module).
        config: Index names and HNSW parameters.
        version: Version to create.
        initial_cap: Expected number of vectors, to pre-size the HNSW graph.

    Returns:
        The index name.
    """
    name = config.index_name(version)
    vector_args: list[Any] = [
        "TYPE", "FLOAT32",
        "DIM", config.dim,
        "DISTANCE_METRIC", "COSINE",
        "M", config.m,
        "EF_CONSTRUCTION", config.ef_construction,
        "EF_RUNTIME", config.ef_runtime,
    ]  # fmt: skip
    if initial_cap:
        vector_args += ["INITIAL_CAP", initial_cap]
    client.execute_command(
        "FT.CREATE", name,
        "ON", "HASH",
        "PREFIX", 1, config.prefix(version),
        "SCHEMA",
        "movie_id", "NUMERIC", "SORTABLE",
        "movie_id", "AS", ID_TAG, "TAG",
        "title", "TEXT",
        "year", "NUMERIC", "SORTABLE",
        "genres", "TAG", "SEPARATOR", GENRE_SEPARATOR,
        "embedding", "VECTOR", "HNSW", len(vector_args), *vector_args,
    )  # fmt: skip
    return name


def movie_hashes(
    embeddings: pd.DataFrame, movies: pd.DataFrame | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yields the hash fields of every movie.

    Args:
        embeddings: Table with movie_id and embedding (float32 arrays of shape (dim,)).
        movies: Normalized movies table for title/year/genres; when None, those columns are
            taken from `embeddings` if present.

    Yields:
        (movie_id, fields) with fields movie_id, embedding (bytes) and, when known, title,
        year and genres.
    """
    frame = embeddings[["movie_id", "embedding"]]
    meta = movies if movies is not None else embeddings
    columns = [c for c in ("title", "year", "genres") if c in meta.columns]
    if columns:
        frame = frame.merge(meta[["movie_id", *columns]], on="movie_id", how="left")
    ids, vectors = embedding_matrix(frame)
    missing: list[Any] = [None] * len(frame)
    titles = frame["title"].tolist() if "title" in columns else missing
    years = frame["year"].tolist() if "year" in columns else missing
    genre_lists = frame["genres"].tolist() if "genres" in columns else missing
    for movie_id, vector, title, year, genres in zip(
        ids.tolist(), vectors, titles, years, genre_lists, strict=True
    ):
        fields: dict[str, Any] = {
            "movie_id": movie_id,
            "embedding": np.ascontiguousarray(vector, dtype="<f4").tobytes(),
        }
        if isinstance(title, str):
            fields["title"] = title
        if year is not None and not pd.isna(year):
            fields["year"] = int(year)
        if isinstance(genres, list | tuple | np.ndarray) and len(genres):
            fields["genres"] = GENRE_SEPARATOR.join(str(g) for g in genres)
        yield movie_id, fields


def load_movies(
    client: redis.Redis,
    config: IndexConfig,
    version: str,
    embeddings: pd.DataFrame,
    movies: pd.DataFrame | None = None,
    *,
    batch_size: int = 500,
) -> int:
    """Writes the movie hashes of one version, `batch_size` HSETs per pipeline round trip.

    Args:
        client: Redis connection.
        config: Index names.
        version: Version whose key prefix to write under.
        embeddings: Table with movie_id and embedding (float32 arrays of shape (dim,)).
        movies: Normalized movies table for title/year/genres.
        batch_size: Hashes per pipeline.

    Returns:
        Number of hashes written.
    """
    prefix = config.prefix(version)
    written = 0
    pipe = client.pipeline(transaction=False)
    for movie_id, fields in movie_hashes(embeddings, movies):
        if len(fields["embedding"]) != 4 * config.dim:
            raise ValueError(
                f"movie {movie_id}: embedding has {len(fields['embedding']) // 4} dims, "
                f"index expects {config.dim}"
            )
        pipe.hset(f"{prefix}{movie_id}", mapping=fields)
        written += 1
        if written % batch_size == 0:
            pipe.execute()
    pipe.execute()
    return written


def index_info(client: redis.Redis, name: str) -> dict[str, Any]:
    """FT.INFO of an index (or alias) as a flat dict with str keys.

    Raises:
        redis.ResponseError: The index does not exist.
    """
    raw = client.execute_command("FT.INFO", name)
    if isinstance(raw, dict):
        items = list(raw.items())
    else:
        items = list(zip(raw[::2], raw[1::2], strict=True))
    return {_text(k): _plain(v) for k, v in items}


def resolve_alias(client: redis.Redis, alias: str) -> str | None:
    """Returns the index an alias points at, or None when the alias does not exist."""
    try:
        return str(index_info(client, alias)["index_name"])
    except redis.ResponseError as err:
        if _is_unknown_index(err):
            return None
        raise


def wait_until_indexed(
    client: redis.Redis, name: str, expected_docs: int, timeout: float = 300.0
) -> int:
    """Blocks until an index has finished indexing and holds `expected_docs` documents.

    Args:
        client: Redis connection.
        name: Index name.
        expected_docs: Number of documents that must be indexed.
        timeout: Seconds to wait at most.

    Returns:
        The number of indexed documents.

    Raises:
        IndexBuildError: Indexing failures, or not done within `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        info = index_info(client, name)
        failures = int(info.get("hash_indexing_failures", 0))
        if failures:
            raise IndexBuildError(f"{name}: {failures} hashes failed to index")
        num_docs = int(info.get("num_docs", 0))
        busy = int(info.get("indexing", 0)) or float(info.get("percent_indexed", 1)) < 1
        if not busy and num_docs >= expected_docs:
            return num_docs
        if time.monotonic() > deadline:
            raise IndexBuildError(f"{name}: {num_docs}/{expected_docs} docs after {timeout}s")
        time.sleep(0.05)


def swap_alias(client: redis.Redis, alias: str, index_name: str) -> str | None:
    """Points `alias` at `index_name` with one atomic FT.ALIASUPDATE.

    Returns:
        The index the alias pointed at before, or None when it was new.
    """
    previous = resolve_alias(client, alias)
    client.execute_command("FT.ALIASUPDATE", alias, index_name)
    return previous


def drop_index(client: redis.Redis, index_name: str, delete_documents: bool = True) -> bool:
    """Drops an index (FT.DROPINDEX), with its hashes when `delete_documents`.

    Returns:
        False when the index did not exist.
    """
    args = ["FT.DROPINDEX", index_name] + (["DD"] if delete_documents else [])
    try:
        client.execute_command(*args)
    except redis.ResponseError as err:
        if _is_unknown_index(err):
            return False
        raise
    return True


def delete_keys(client: redis.Redis, prefix: str, batch_size: int = 1000) -> int:
    """Deletes every key starting with `prefix` (SCAN + UNLINK); returns how many.

    Used before creating a version, so leftovers of a crashed build are not indexed.
    """
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=batch_size):
        batch.append(key)
        if len(batch) >= batch_size:
            deleted += int(client.execute_command("UNLINK", *batch))
            batch = []
    if batch:
        deleted += int(client.execute_command("UNLINK", *batch))
    return deleted


def list_versions(client: redis.Redis, config: IndexConfig) -> list[str]:
    """Versions of this alias's indexes present in Redis (FT._LIST), sorted."""
    start = f"{config.alias}:"
    names = (_text(n) for n in client.execute_command("FT._LIST"))
    return sorted(n[len(start) :] for n in names if n.startswith(start))


def build_index(
    client: redis.Redis,
    embeddings: pd.DataFrame,
    movies: pd.DataFrame | None = None,
    config: IndexConfig | None = None,
    *,
    version: str | None = None,
    drop_previous: bool = True,
    batch_size: int = 500,
    timeout: float = 300.0,
) -> IndexBuild:
    """Builds a new index version, then atomically points the alias at it.

    Steps: FT.CREATE the new version, pipeline-load its hashes, wait until all are indexed,
    FT.ALIASUPDATE, and (with `drop_previous`) drop the previous version with its hashes.
    Queries through the alias keep working throughout. On failure the new version is
    dropped and the alias left as it was.

    Args:
        client: Redis connection (server with the search module).
        embeddings: Table with movie_id and embedding (n rows of float32 (dim,) vectors).
        movies: Normalized movies table for title/year/genres (optional).
        config: Index names and HNSW parameters; defaults to `IndexConfig()`.
        version: New version name ([A-Za-z0-9_.-]+); a timestamp when None.
        drop_previous: Drop the version the alias pointed at before.
        batch_size: HSETs per pipeline.
        timeout: Seconds to wait for indexing.

    Returns:
        What was built and swapped.

    Raises:
        IndexBuildError: The version is the live one or exists already, or indexing failed.
    """
    config = config or IndexConfig()
    version = version or new_version()
    name = config.index_name(version)
    live = resolve_alias(client, config.alias)
    if live == name:
        raise IndexBuildError(f"{name} is live behind alias {config.alias!r}; use a new version")
    if version in list_versions(client, config):
        raise IndexBuildError(f"{name} exists already; drop it first or use a new version")

    stale = delete_keys(client, config.prefix(version))
    if stale:
        logger.warning("deleted %d stale keys under %s", stale, config.prefix(version))
    started = time.perf_counter()
    create_index(client, config, version, initial_cap=len(embeddings))
    try:
        written = load_movies(client, config, version, embeddings, movies, batch_size=batch_size)
        num_docs = wait_until_indexed(client, name, written, timeout=timeout)
        if num_docs != written:
            raise IndexBuildError(f"{name}: {num_docs} docs indexed, {written} written")
    except BaseException:
        drop_index(client, name, delete_documents=True)
        raise
    load_seconds = time.perf_counter() - started

    previous = swap_alias(client, config.alias, name)
    dropped = False
    if drop_previous and previous is not None and previous != name:
        dropped = drop_index(client, previous, delete_documents=True)
    return IndexBuild(
        index_name=name,
        version=version,
        num_docs=num_docs,
        previous=previous,
        previous_dropped=dropped,
        load_seconds=load_seconds,
    )


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _check_version(version: str) -> None:
    if not _VERSION_RE.match(version):
        raise ValueError(f"version must match {_VERSION_RE.pattern}: {version!r}")


def _is_unknown_index(err: redis.ResponseError) -> bool:
    message = str(err).lower()
    return "unknown index" in message or "no such index" in message or "not found" in message


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    return value
