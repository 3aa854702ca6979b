"""Content-based retrieval: movie text -> MiniLM embeddings -> Redis HNSW index -> KNN queries.

Modules:
    text        Deterministic movie text (title, year, genres, top tags).
    embeddings  all-MiniLM-L6-v2 vectors (offline, bundled model) and their parquet file.
    index       Versioned RediSearch HNSW index behind an alias; atomic rebuild/swap.
    query       KNN query logic as I/O-free plans (commands, parsing, seed aggregation).
    client      Sync and asyncio clients executing those plans against Redis.
    exact       Exact numpy reference search.
    offline     Seed selection and the offline content-alone recommender.

Only lightweight modules are imported here; the encoder (torch) loads on first use.
"""

from models.content.client import AsyncVectorSearchClient, VectorSearchClient
from models.content.exact import ExactIndex
from models.content.index import IndexBuild, IndexBuildError, IndexConfig, build_index
from models.content.offline import (
    SeedPolicy,
    content_recommendations,
    exact_recommendations,
    select_seeds,
)
from models.content.query import MovieNotFoundError, ScoredMovie, SearchFilter

__all__ = [
    "AsyncVectorSearchClient",
    "ExactIndex",
    "IndexBuild",
    "IndexBuildError",
    "IndexConfig",
    "MovieNotFoundError",
    "ScoredMovie",
    "SearchFilter",
    "SeedPolicy",
    "VectorSearchClient",
    "build_index",
    "content_recommendations",
    "exact_recommendations",
    "select_seeds",
]
