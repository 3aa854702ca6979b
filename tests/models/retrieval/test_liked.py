"""Retrieval from liked movies' embeddings (pure numpy, no services)."""

from __future__ import annotations

import numpy as np

from models.retrieval.liked import LikedMoviesQuery


def test_the_mean_of_liked_embeddings_is_the_query() -> None:
    ids = np.array([10, 20, 30, 40])
    embeddings = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0]], dtype=np.float32)
    query = LikedMoviesQuery(ids, embeddings)
    top = query.candidates([10, 20], 3)
    assert top.movie_ids.tolist() == [10, 20, 30]
    assert top.scores[0] >= top.scores[1] >= top.scores[2]
    assert query.candidates([999], 3).movie_ids.tolist() == []  # no embedding: nothing
    assert len(query.candidates([30], 10)) == 4  # n clipped to the catalog
