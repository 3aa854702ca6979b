"""The retrieval runtime: loaded from an artifacts tree, batched queries, user side features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.retrieval.runtime import USERS_FILE, RetrievalRuntime, UserSideFeatures
from movierec.layout import ArtifactLayout
from tests.models.retrieval.synthetic import make_dataset

K = 12
UNKNOWN = 999_999
THREADS = (2, 2)  # what training set in this process (the pools are set once)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ArtifactLayout, pd.DataFrame]:
    """A trained model exported into an artifacts tree, with `retrieval/users.parquet`."""
    from models.retrieval.config import RetrievalConfig
    from models.retrieval.export import export_retrieval
    from models.retrieval.train import train_retrieval

    ratings, movies, users = make_dataset()
    config = RetrievalConfig(negatives="full", epochs=1, batch_size=64, embedding_dim=8)
    result = train_retrieval(ratings, movies, users, config)
    layout = ArtifactLayout.of(tmp_path_factory.mktemp("artifacts"), "synthetic", "eval")
    export_retrieval(result, layout.retrieval_dir, k=K)
    users.to_parquet(layout.retrieval_dir / USERS_FILE)
    return result, layout, users


def _in_process(result: Any, users: pd.DataFrame, user_ids: list[int]) -> tuple[Any, Any]:
    """Exact top-K of the trained towers; unknown users get the defaults (0, "")."""
    table = users.set_index("user_id")
    inputs: dict[str, np.ndarray] = {"user_id": np.asarray(user_ids, dtype=np.int64)}
    for name in result.model.user_tower.feature_names:
        default: Any = 0 if name == "age" else ""
        values = [table[name].get(u, default) for u in user_ids]
        inputs[name] = np.asarray(values, dtype=np.int64 if name == "age" else object)
    scores = result.model.user_tower(inputs).numpy() @ result.model.catalog_embeddings().numpy().T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return result.movies.movie_id[order], np.take_along_axis(scores, order, axis=1)


@pytest.mark.slow
def test_top_k_is_the_models_answer_with_the_users_side_features(
    built: tuple[Any, ArtifactLayout, pd.DataFrame],
) -> None:
    result, layout, users = built
    runtime = RetrievalRuntime.load(layout, *THREADS)
    assert runtime.k == K and len(runtime.users) == len(users)
    assert runtime.users.source.endswith(USERS_FILE)
    user_ids = [1, 2, UNKNOWN]
    ids, scores = runtime.top_k(user_ids, K)
    assert ids.shape == scores.shape == (3, K)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    want_ids, want_scores = _in_process(result, users, user_ids)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    # One batched call answers like one call per user, cut to k.
    for row, user in enumerate(user_ids):
        one_ids, one_scores = runtime.top_k([user], 5)
        np.testing.assert_array_equal(one_ids[0], ids[row, :5])
        np.testing.assert_allclose(one_scores[0], scores[row, :5], rtol=1e-6)


@pytest.mark.slow
def test_candidates_are_one_users_top_n(built: tuple[Any, ArtifactLayout, pd.DataFrame]) -> None:
    _, layout, _ = built
    runtime = RetrievalRuntime.load(layout, *THREADS)
    ids, scores = runtime.top_k([3], K)
    three = runtime.candidates(3, 3)
    np.testing.assert_array_equal(three.movie_ids, ids[0, :3])
    np.testing.assert_allclose(three.scores, scores[0, :3], rtol=1e-6)
    assert len(runtime.candidates(3, 10 * K)) == K  # clipped to the exported K
    assert len(runtime.candidates(3, 0)) == 0
    with pytest.raises(ValueError, match="k must be"):
        runtime.top_k([3], K + 1)


def test_user_side_features_batch_by_hand() -> None:
    table = UserSideFeatures(
        pd.DataFrame({"user_id": [1, 2], "age": [30.0, None], "gender": ["F", "M"]}), "t"
    )
    assert table.batch([2, 7, 1]) == {"age": [None, None, 30], "gender": ["M", None, "F"]}
    assert table.batch([]) == {"age": [], "gender": []}
    assert UserSideFeatures(None).batch([1]) == {}


def test_user_side_features_prefer_the_retrieval_export(tmp_path: Path) -> None:
    retrieval, features = tmp_path / "retrieval", tmp_path / "features"
    retrieval.mkdir()
    features.mkdir()
    assert len(UserSideFeatures.load(retrieval, features)) == 0
    pd.DataFrame(
        {
            "user_id": [1, 1, 2],
            "event_timestamp": pd.to_datetime([1, 2, 1], unit="s", utc=True),
            "user_age": [20, 21, None],
            "user_gender": ["M", "M", "F"],
            "user_occupation": ["x", "y", None],
        }
    ).to_parquet(features / "user_demographics.parquet")
    table = UserSideFeatures.load(retrieval, features)
    assert table.features(1) == {"age": [21], "gender": ["M"], "occupation": ["y"]}
    assert table.features(2)["age"] == [None]
    assert table.features(3) == {}
    pd.DataFrame({"user_id": [1], "age": [30], "zip_code": ["12345"]}).to_parquet(
        retrieval / "users.parquet"
    )
    own = UserSideFeatures.load(retrieval, features)
    assert own.features(1) == {"age": [30], "zip_code": ["12345"]}
    assert own.source.endswith("users.parquet")
