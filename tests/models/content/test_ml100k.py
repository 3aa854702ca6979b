"""Content retrieval on the real ml-100k catalogue with real MiniLM embeddings."""

from __future__ import annotations

import pandas as pd
import pytest

from models.content.client import RedisTransport, VectorSearch
from models.content.embeddings import embedding_matrix
from models.content.exact import ExactIndex
from models.content.offline import SeedPolicy, content_recommendations, exact_recommendations
from models.content.query import SearchFilter
from models.data import stratified_split
from models.data.schema import MovieLens

pytestmark = pytest.mark.integration

STAR_WARS, EMPIRE, JEDI = 50, 172, 181


def test_embeddings_cover_the_catalogue(ml100k: MovieLens, ml100k_embeddings: pd.DataFrame) -> None:
    assert len(ml100k_embeddings) == len(ml100k.movies) == 1682
    text = ml100k_embeddings.set_index("movie_id").loc[STAR_WARS, "text"]
    assert text == "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War."


def test_star_wars_neighbours(
    ml100k_index: VectorSearch, content_transport: RedisTransport
) -> None:
    hits = content_transport.run(ml100k_index.similar_movies(STAR_WARS, 10))
    ids = [h.movie_id for h in hits]
    assert len(ids) == 10
    assert STAR_WARS not in ids
    assert {EMPIRE, JEDI} <= set(ids)
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@pytest.mark.parametrize(
    ("genres", "year_range"),
    [
        (["Film-Noir"], None),
        (["Children's"], (1990, 1999)),
        (["Sci-Fi", "Film-Noir"], (1940, 1979)),
    ],
)
def test_filtered_neighbours_on_real_data(
    ml100k_index: VectorSearch,
    content_transport: RedisTransport,
    ml100k: MovieLens,
    genres: list[str],
    year_range: tuple[int, int] | None,
) -> None:
    movies = ml100k.movies.set_index("movie_id")
    hits = content_transport.run(
        ml100k_index.similar_movies(STAR_WARS, 10, SearchFilter.of(genres, year_range))
    )
    assert len(hits) == 10
    for hit in hits:
        row = movies.loc[hit.movie_id]
        assert set(genres) & set(row["genres"]), (hit, row["genres"])
        if year_range is not None:
            assert year_range[0] <= row["year"] <= year_range[1]
        assert hit.title == row["title"]


def test_offline_content_recommender_matches_exact_search(
    ml100k_index: VectorSearch,
    content_transport: RedisTransport,
    ml100k: MovieLens,
    ml100k_embeddings: pd.DataFrame,
) -> None:
    train, _ = stratified_split(ml100k.ratings, ratio=0.75, seed=42)
    users = sorted(train["user_id"].unique())[:150]
    train = train[train["user_id"].isin(users)]
    policy = SeedPolicy(n_seeds=5)

    served = content_recommendations(
        content_transport, ml100k_index, train, 10, policy=policy, batch_users=64
    )
    reference = exact_recommendations(
        ExactIndex(*embedding_matrix(ml100k_embeddings)), train, 10, policy=policy
    )

    assert served.groupby("user_id").size().eq(10).all()
    assert set(served["user_id"]) == set(users)
    seen = train.groupby("user_id")["movie_id"].agg(set)
    for user_id, group in served.groupby("user_id"):
        assert not set(group["movie_id"]) & seen[user_id]
    # HNSW (default EF_RUNTIME, raised to K by the over-fetch) vs exact: near-perfect recall.
    pairs = set(zip(served["user_id"], served["movie_id"], strict=True))
    expected = set(zip(reference["user_id"], reference["movie_id"], strict=True))
    assert len(pairs & expected) / len(expected) >= 0.98
