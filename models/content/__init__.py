"""Content-based retrieval: movie text -> MiniLM embeddings -> Redis HNSW index -> KNN queries.

Modules:
    text        Deterministic movie text (title, year, genres, top tags).
    embeddings  all-MiniLM-L6-v2 vectors (offline, bundled model) and their parquet file.
    index       Versioned RediSearch HNSW index behind an alias; atomic rebuild/swap.
    query       KNN query logic as I/O-free plans (commands, parsing, seed aggregation).
    client      `VectorSearch` (those plans on an index alias) and the sync and asyncio
                transports running plans against Redis.
    runtime     Seeds -> KNN -> ScoredMovies, for serving and evaluation alike.
    exact       Exact numpy reference search.
    offline     Seed selection and the offline content-alone recommender.

Only lightweight modules are imported here; the encoder (torch) loads on first use.
"""

from models.content.client import AsyncRedisTransport, RedisTransport, VectorSearch, lockstep
from models.content.exact import ExactIndex
from models.content.index import IndexBuild, IndexBuildError, IndexConfig, build_index
from models.content.offline import (
    SeedPolicy,
    content_recommendations,
    exact_recommendations,
    select_seeds,
)
from models.content.query import MovieNotFoundError, ScoredMovie, SearchFilter
from models.content.runtime import ContentRuntime

__all__ = [
    "AsyncRedisTransport",
    "ContentRuntime",
    "ExactIndex",
    "IndexBuild",
    "IndexBuildError",
    "IndexConfig",
    "MovieNotFoundError",
    "RedisTransport",
    "ScoredMovie",
    "SearchFilter",
    "SeedPolicy",
    "VectorSearch",
    "build_index",
    "content_recommendations",
    "exact_recommendations",
    "lockstep",
    "select_seeds",
]
