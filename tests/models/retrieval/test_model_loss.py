"""The two softmax variants of `TwoTowerModel.compute_loss`, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from models.retrieval.config import RetrievalConfig
from models.retrieval.features import build_movie_table, build_user_table
from models.retrieval.model import TwoTowerModel
from models.retrieval.towers import MovieTower, UserTower
from models.retrieval.train import training_examples
from models.tensorflow_env import tf
from tests.models.retrieval.synthetic import make_dataset


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _model(config: RetrievalConfig) -> tuple[TwoTowerModel, dict[str, np.ndarray], np.ndarray]:
    ratings, movies, users = make_dataset(num_users=8, num_movies=20, per_user=5)
    movie_table = build_movie_table(movies)
    user_table = build_user_table(users, ratings)
    examples = training_examples(ratings, user_table, movie_table)
    probability = np.bincount(examples["movie_pos"], minlength=len(movie_table)) / len(ratings)
    catalog = movie_table.as_features()
    model = TwoTowerModel(
        config,
        UserTower(config, user_table.user_id, user_table.features),
        MovieTower(config, catalog),
        catalog,
        probability,
    )
    batch = {name: value[:12] for name, value in examples.items()}
    batch["movie_pos"][1] = batch["movie_pos"][0]  # force an accidental hit in the batch
    return model, batch, probability


def test_full_softmax_is_exact_catalog_softmax() -> None:
    config = RetrievalConfig(negatives="full", temperature=0.5, embedding_dim=8)
    model, batch, _ = _model(config)
    loss = float(model.compute_loss({k: tf.constant(v) for k, v in batch.items()}))
    queries = model.user_tower(model.user_inputs(batch)).numpy()
    catalog = model.catalog_embeddings().numpy()
    logp = _log_softmax(queries @ catalog.T / 0.5)
    expected = -logp[np.arange(len(queries)), batch["movie_pos"]].sum()
    assert loss == pytest.approx(expected, rel=1e-4)


def test_in_batch_softmax_with_logq_and_accidental_hits() -> None:
    config = RetrievalConfig(negatives="in_batch", logq_correction=True, embedding_dim=8)
    model, batch, probability = _model(config)
    loss = float(model.compute_loss({k: tf.constant(v) for k, v in batch.items()}))
    pos = batch["movie_pos"]
    queries = model.user_tower(model.user_inputs(batch)).numpy()
    candidates = model.catalog_embeddings().numpy()[pos]
    logits = queries @ candidates.T - np.log(np.clip(probability[pos], 1e-6, 1.0))[None, :]
    same = pos[:, None] == pos[None, :]
    np.fill_diagonal(same, False)
    logits[same] = -np.inf  # another row's copy of my positive is not a negative
    expected = -np.diag(_log_softmax(logits)).sum()
    assert loss == pytest.approx(expected, rel=1e-4)
