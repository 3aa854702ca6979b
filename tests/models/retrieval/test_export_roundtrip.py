"""Train a few steps, export, reload in a fresh process and compare answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from models.retrieval.config import RetrievalConfig
from models.retrieval.export import MOVIE_EMBEDDINGS_FILE, export_retrieval
from models.retrieval.train import TrainResult, train_retrieval
from tests.models.retrieval.synthetic import make_dataset

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
K = 15
QUERY_USERS = [1, 2, 5, 999_999]  # the last one is unknown: OOV bucket, still answered

LOAD_SCRIPT = """
import json, sys
from models.retrieval.runtime import load_retriever
out = {}
jobs, movies = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name, path, features in jobs:
    retriever = load_retriever(path, intra_op_threads=1, inter_op_threads=1)
    ids, scores = retriever.recommend(features["user_id"], features)
    emb = retriever.user_embeddings(features["user_id"], features)
    movie_emb = retriever.movie_embeddings(movies)
    keep = ids[3, :5].tolist()  # user 4 excludes every movie but its top 5
    rest = [m for m in movies["movie_id"] if m not in keep]
    excluded = [ids[0, :3].tolist(), [], [-5], rest]
    ex_ids, ex_scores = retriever.recommend(features["user_id"], features, exclude=excluded)
    out[name] = {
        "ids": ids.tolist(), "scores": scores.tolist(), "emb": emb.tolist(),
        "movie_emb": movie_emb.tolist(), "k": retriever.k,
        "ex_ids": ex_ids.tolist(), "ex_scores": ex_scores.tolist(),
        "features": list(retriever.feature_names),
    }
print(json.dumps(out))
"""


def _expected(result: TrainResult, features: dict[str, list[Any]]) -> tuple[np.ndarray, ...]:
    """In-process answer: tower outputs and an exact numpy top-K."""
    inputs = {"user_id": np.asarray(features["user_id"], dtype=np.int64)}
    for name in result.model.user_tower.feature_names:
        inputs[name] = np.asarray(features[name], dtype=np.int64 if name == "age" else object)
    queries = result.model.user_tower(inputs).numpy()
    catalog = result.model.catalog_embeddings().numpy()
    scores = queries @ catalog.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return result.movies.movie_id[order], np.take_along_axis(scores, order, axis=1), queries


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[TrainResult, Path]]:
    ratings, movies, users = make_dataset()
    out: dict[str, tuple[TrainResult, Path]] = {}
    runs = {
        "features_full": (
            users,
            RetrievalConfig(negatives="full", epochs=2, batch_size=64, embedding_dim=16),
        ),
        "ids_in_batch_history": (
            None,
            RetrievalConfig(
                negatives="in_batch",
                use_history=True,
                use_movie_features=False,
                hidden_dims=(16,),
                epochs=2,
                batch_size=64,
                embedding_dim=8,
            ),
        ),
    }
    for name, (user_table, config) in runs.items():
        result = train_retrieval(ratings, movies, user_table, config)
        path = export_retrieval(result, tmp_path_factory.mktemp(name), k=K)
        out[name] = (result, path)
    return out


def test_reloaded_model_matches_in_process(exported: dict[str, tuple[TrainResult, Path]]) -> None:
    _, _, users = make_dataset()
    known = users.set_index("user_id").loc[QUERY_USERS[:-1]]
    features: dict[str, list[Any]] = {
        "user_id": QUERY_USERS,
        "age": [*known["age"].tolist(), 0],
        "gender": [*known["gender"].tolist(), "?"],
        "occupation": [*known["occupation"].tolist(), "astronaut"],
        "zip_code": [*known["zip_code"].tolist(), ""],
    }
    jobs = [[name, str(path), features] for name, (_, path) in exported.items()]
    catalog = next(iter(exported.values()))[0].movies
    movies = {
        "movie_id": catalog.movie_id.tolist(),
        "title": catalog.title.tolist(),
        "genres": catalog.genres.tolist(),
        "year": catalog.year.tolist(),
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, json.dumps(jobs), json.dumps(movies)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (result, _) in exported.items():
        got = answers[name]
        ids, scores, queries = _expected(result, features)
        assert got["k"] == K
        assert got["features"] == list(result.model.user_tower.feature_names)
        assert np.asarray(got["ids"]).shape == (len(QUERY_USERS), K)
        np.testing.assert_array_equal(np.asarray(got["ids"]), ids)
        np.testing.assert_allclose(np.asarray(got["scores"]), scores, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(got["emb"]), queries, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(
            np.asarray(got["movie_emb"]),
            result.model.catalog_embeddings().numpy(),
            rtol=1e-5,
            atol=1e-5,
        )
        # In-graph exclusion: the excluded movies vanish, the rest shift up, the tail is -inf.
        got_ids, ex_ids = np.asarray(got["ids"]), np.asarray(got["ex_ids"])
        ex_scores = np.asarray(got["ex_scores"])
        np.testing.assert_array_equal(ex_ids[0, : K - 3], got_ids[0, 3:])
        assert not set(ex_ids[0].tolist()) & set(got_ids[0, :3].tolist())
        np.testing.assert_array_equal(ex_ids[1], got_ids[1])  # nothing excluded
        np.testing.assert_array_equal(ex_ids[2], got_ids[2])  # unknown id ignored
        np.testing.assert_array_equal(ex_ids[3, :5], got_ids[3, :5])
        assert ex_ids[3, 5:].tolist() == [-1] * (K - 5)
        assert np.isneginf(ex_scores[3, 5:]).all()
    assert answers["features_full"]["features"] == ["age", "gender", "occupation", "zip_code"]
    assert answers["ids_in_batch_history"]["features"] == []


def test_movie_embeddings_parquet(exported: dict[str, tuple[TrainResult, Path]]) -> None:
    for result, path in exported.values():
        frame = pd.read_parquet(path / MOVIE_EMBEDDINGS_FILE)
        assert frame["movie_id"].tolist() == result.movies.movie_id.tolist()
        vectors = np.stack(list(frame["embedding"]))
        assert vectors.dtype == np.float32
        np.testing.assert_allclose(
            vectors, result.model.catalog_embeddings().numpy(), rtol=1e-6, atol=1e-6
        )


def test_metadata(exported: dict[str, tuple[TrainResult, Path]]) -> None:
    result, path = exported["features_full"]
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["k"] == K
    assert metadata["embedding_dim"] == 16
    assert metadata["num_movies"] == len(result.movies)
    assert RetrievalConfig.from_dict(metadata["config"]) == result.config
