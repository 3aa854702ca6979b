"""The item-to-item source: sparse top-k neighbours and the runtime's candidates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models.itemcf.runtime import ItemCFRuntime
from models.itemcf.similarity import (
    ItemCFConfig,
    cosine_neighbours,
    ease_neighbours,
    interaction_matrix,
)


def _ratings() -> pd.DataFrame:
    # users 1-4; movies 10..14; 10 and 11 always watched together, 14 never with 10.
    pairs = [
        (1, 10),
        (1, 11),
        (1, 12),
        (2, 10),
        (2, 11),
        (3, 10),
        (3, 11),
        (3, 13),
        (4, 14),
        (4, 12),
    ]
    return pd.DataFrame(pairs, columns=["user_id", "movie_id"])


MOVIES = np.array([10, 11, 12, 13, 14])


def test_interaction_matrix_is_binary_and_keeps_column_order() -> None:
    ratings = pd.concat([_ratings(), pd.DataFrame({"user_id": [1], "movie_id": [10]})])
    matrix, users = interaction_matrix(ratings, MOVIES)
    assert users.tolist() == [1, 2, 3, 4]
    assert matrix.shape == (4, 5)
    assert matrix.toarray()[0].tolist() == [1, 1, 1, 0, 0]  # the duplicate counted once


def test_ease_matches_the_closed_form_before_the_cut() -> None:
    matrix, _ = interaction_matrix(_ratings(), MOVIES)
    config = ItemCFConfig(method="ease", top_k=5, ease_lambda=1.0)
    dense = matrix.toarray().astype(np.float64)
    inverse = np.linalg.inv(dense.T @ dense + np.eye(5))
    expected = inverse / -np.diag(inverse)[None, :]
    np.fill_diagonal(expected, 0.0)
    got = ease_neighbours(matrix, config).toarray()
    np.testing.assert_allclose(got, np.where(expected > 0, expected, 0.0), rtol=1e-5, atol=1e-6)


def test_top_k_cut_keeps_k_neighbours_per_movie_without_itself() -> None:
    matrix, _ = interaction_matrix(_ratings(), MOVIES)
    for build in (ease_neighbours, cosine_neighbours):
        neighbours = build(matrix, ItemCFConfig(top_k=2, ease_lambda=1.0, block=2))
        counts = np.diff(neighbours.indptr)
        assert counts.max() <= 2
        assert np.all(neighbours.diagonal() == 0)
    cosine = cosine_neighbours(matrix, ItemCFConfig(top_k=1, shrink=0.0)).toarray()
    assert cosine[0].argmax() == 1  # 10's nearest neighbour is 11


def test_ease_refuses_a_catalog_over_its_limit() -> None:
    matrix, _ = interaction_matrix(_ratings(), MOVIES)
    with pytest.raises(ValueError, match="cosine"):
        ease_neighbours(matrix, ItemCFConfig(ease_max_items=4))


def test_runtime_excludes_seen_movies_and_unknown_users_get_nothing(tmp_path: Path) -> None:
    runtime = ItemCFRuntime.fit(_ratings(), MOVIES, ItemCFConfig(method="cosine", top_k=4))
    answer = runtime.candidates(2, 3)  # user 2 saw 10 and 11
    assert answer.movie_ids.tolist()[0] in (12, 13)
    assert not {10, 11} & set(answer.movie_ids.tolist())
    assert np.all(np.diff(answer.scores) <= 0)
    assert len(runtime.candidates(99, 3)) == 0
    runtime.save(tmp_path / "itemcf")
    loaded = ItemCFRuntime.load(tmp_path / "itemcf")
    again = loaded.candidates(2, 3)
    assert again.movie_ids.tolist() == answer.movie_ids.tolist()
    np.testing.assert_allclose(again.scores, answer.scores)
    assert loaded.describe()["method"] == "cosine"


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        ItemCFConfig(method="knn")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ItemCFConfig(top_k=0)


def test_a_history_given_at_serve_time_scores_like_a_training_row() -> None:
    # Neighbours by hand: row i is movie i's weight towards each movie (movies 10, 11, 12).
    neighbours = sp.csr_matrix(
        np.array([[0.0, 0.5, 0.1], [0.4, 0.0, 0.3], [0.2, 0.6, 0.0]], dtype=np.float32)
    )
    history = sp.csr_matrix(np.array([[1.0, 0.0, 0.0]], dtype=np.float32))
    runtime = ItemCFRuntime(
        np.array([10, 11, 12]), neighbours, history, np.array([7]), ItemCFConfig()
    )
    # History {10}: 11 scores 0.5, 12 scores 0.1; 10 itself is excluded.
    one = runtime.from_history([10], 5)
    assert one.movie_ids.tolist() == [11, 12]
    np.testing.assert_allclose(one.scores, [0.5, 0.1], rtol=1e-6)
    # The same as user 7, whose training row is {10}.
    assert runtime.candidates(7, 5).movie_ids.tolist() == [11, 12]
    # History {10, 12} plus an id outside the catalog: 11 scores 0.5 + 0.6.
    two = runtime.from_history([12, 99, 10, 10], 5)
    assert two.movie_ids.tolist() == [11]
    np.testing.assert_allclose(two.scores, [1.1], rtol=1e-6)
    assert len(runtime.from_history([], 5)) == 0
    assert len(runtime.from_history([99], 5)) == 0
    assert len(runtime.from_history([10], 0)) == 0
