"""Training entry point: normalized tables in, trained `TwoTowerModel` out."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.retrieval.config import RetrievalConfig
from models.retrieval.features import (
    MovieTable,
    UserTable,
    build_history,
    build_movie_table,
    build_user_table,
)
from models.retrieval.model import TwoTowerModel
from models.retrieval.towers import MovieTower, UserTower
from models.tensorflow_env import configure_threads, tf


@dataclass
class TrainResult:
    """What `train_retrieval` returns.

    Attributes:
        model: The trained model (towers reachable as `model.user_tower`/`model.movie_tower`).
        history: Keras `History.history`: per-epoch lists, e.g. "loss".
        config: The configuration used.
        movies: The catalog the model was trained on (the retrieval corpus).
        users: The known users and their side features.
        seconds: Wall-clock training time (fit only).
    """

    model: TwoTowerModel
    history: dict[str, list[float]]
    config: RetrievalConfig
    movies: MovieTable
    users: UserTable
    seconds: float = 0.0
    extras: dict[str, object] = field(default_factory=dict)


def training_examples(
    ratings: pd.DataFrame, users: UserTable, movies: MovieTable
) -> dict[str, np.ndarray]:
    """Turns training ratings into model inputs: every rating is one positive (implicit feedback).

    Args:
        ratings: Training ratings (user_id, movie_id, ...). Movies outside the catalog are
            dropped.
        users: Known users with their side features.
        movies: The catalog.

    Returns:
        User-tower inputs, each [R], plus `movie_pos` [R] int64 (0-based catalog row).
    """
    position = pd.Series(np.arange(len(movies), dtype=np.int64), index=movies.movie_id)
    movie_pos = ratings["movie_id"].map(position)
    keep = movie_pos.notna().to_numpy()
    examples = users.rows(ratings["user_id"].to_numpy(dtype=np.int64)[keep])
    examples["movie_pos"] = movie_pos.to_numpy()[keep].astype(np.int64)
    return examples


def user_weights(user_ids: np.ndarray, exponent: float) -> np.ndarray:
    """Per-example weights n_u^-exponent for [R] example user ids, rescaled to mean 1 -> [R]."""
    _, inverse, counts = np.unique(user_ids, return_inverse=True, return_counts=True)
    weights = counts[inverse].astype(np.float64) ** -exponent
    return (weights / weights.mean()).astype(np.float32)


def make_optimizer(config: RetrievalConfig, total_steps: int) -> tf.keras.optimizers.Optimizer:
    """Returns the configured optimizer, with cosine decay over `total_steps` if enabled."""
    learning_rate: float | tf.keras.optimizers.schedules.LearningRateSchedule
    learning_rate = config.learning_rate
    if config.cosine_decay and total_steps > 0:
        learning_rate = tf.keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=total_steps
        )
    if config.optimizer == "adagrad":
        return tf.keras.optimizers.Adagrad(learning_rate=learning_rate)
    return tf.keras.optimizers.Adam(learning_rate=learning_rate)


def train_retrieval(
    train_ratings: pd.DataFrame,
    movies: pd.DataFrame,
    users: pd.DataFrame | None = None,
    config: RetrievalConfig | None = None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 0,
) -> TrainResult:
    """Trains the two-tower model on the training split.

    Args:
        train_ratings: Training ratings in the `models.data.schema` format. Every row is a
            positive (user, movie) pair; the rating value is ignored.
        movies: The movies table (the retrieval corpus is every movie in it).
        users: The users table, or None for variants without one (id-only user tower).
        config: Hyperparameters; defaults to `RetrievalConfig()`.
        callbacks: Extra Keras callbacks (e.g. per-epoch evaluation).
        verbose: Keras `fit` verbosity.

    Returns:
        The model, the Keras history and the tables it was built from.
    """
    config = config or RetrievalConfig()
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    tf.keras.utils.set_random_seed(config.seed)

    movie_table = build_movie_table(movies)
    user_table = build_user_table(users, train_ratings, use_features=config.use_user_features)
    examples = training_examples(train_ratings, user_table, movie_table)
    if config.user_weight_exponent:
        examples["sample_weight"] = user_weights(examples["user_id"], config.user_weight_exponent)

    counts = np.bincount(examples["movie_pos"], minlength=len(movie_table)).astype(np.float64)
    sampling_probability = counts / max(counts.sum(), 1.0)
    history = None
    if config.use_history:
        history = build_history(
            train_ratings, user_table.user_id, movie_table.movie_id, config.max_history
        )

    catalog = movie_table.as_features()
    model = TwoTowerModel(
        config,
        UserTower(
            config, user_table.user_id, user_table.features, history, num_movies=len(movie_table)
        ),
        MovieTower(config, catalog),
        catalog,
        sampling_probability,
    )
    num_examples = len(examples["movie_pos"])
    steps = config.epochs * -(-num_examples // config.batch_size)
    model.compile(optimizer=make_optimizer(config, steps))

    dataset = (
        tf.data.Dataset.from_tensor_slices(examples)
        .shuffle(num_examples, seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    start = time.perf_counter()
    fit = model.fit(dataset, epochs=config.epochs, callbacks=list(callbacks), verbose=verbose)
    seconds = time.perf_counter() - start
    return TrainResult(
        model=model,
        history={k: [float(x) for x in v] for k, v in fit.history.items()},
        config=config,
        movies=movie_table,
        users=user_table,
        seconds=seconds,
    )
