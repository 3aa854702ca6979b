"""Fits the ranking network on labeled candidate rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.ranking.config import RankerConfig
from models.ranking.dataset import InputRows
from models.ranking.model import LABEL, MASK, WEIGHT, RankerEnsemble, RankerNet, RankerTask
from models.tensorflow_env import configure_threads, keras, tf

_SAMPLE_ROWS = 50_000


@dataclass
class TrainedRanker:
    """What `train_ranker` returns: the network, the Keras history and the fit time."""

    net: keras.Model
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def padded_lists(
    rows: InputRows, labels: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Groups rows by list into [U, L(, d)] arrays padded with zeros, plus LABEL and MASK.

    A list is a run of rows of one user (and one fold, when the frame has a `fold` column);
    rows must be grouped that way (as `build_input_rows` orders them).
    """
    users = rows.frame["user_id"].to_numpy(np.int64)
    change = np.ones(len(users), dtype=bool)
    change[1:] = users[1:] != users[:-1]
    if "fold" in rows.frame:
        folds = rows.frame["fold"].to_numpy(np.int64)
        change[1:] |= folds[1:] != folds[:-1]
    list_index = np.cumsum(change) - 1
    starts = np.flatnonzero(change)
    slot = np.arange(len(users)) - starts[list_index]
    n_lists, length = len(starts), int(slot.max()) + 1
    out: dict[str, np.ndarray] = {}
    extra = {LABEL: labels} if weights is None else {LABEL: labels, WEIGHT: weights}
    for name, values in {**rows.arrays, **extra}.items():
        padded_shape = (n_lists, length, *values.shape[1:])
        fill = "" if values.dtype == object else 0
        padded = np.full(padded_shape, fill, dtype=values.dtype)
        padded[list_index, slot] = values
        out[name] = padded
    mask = np.zeros((n_lists, length), dtype=np.float32)
    mask[list_index, slot] = 1.0
    out[MASK] = mask
    if weights is not None:
        out[WEIGHT] = out[WEIGHT][:, 0]  # one weight per list (a list is one user)
    return out


def user_weights(users: np.ndarray, counts: dict[int, int], exponent: float) -> np.ndarray:
    """Row weights n_u^-exponent (n_u = counts[user], at least 1), rescaled to mean 1."""
    n = np.array([max(counts.get(int(u), 1), 1) for u in users], dtype=np.float64)
    weights = n**-exponent
    return (weights / weights.mean()).astype(np.float32)


def train_ranker(
    rows: InputRows,
    labels: np.ndarray,
    config: RankerConfig,
    occupations: Sequence[str] = (),
    movie_ids: Sequence[int] = (),
    weights: np.ndarray | None = None,
    verbose: int = 0,
) -> TrainedRanker:
    """Trains `RankerNet` (or `config.ensemble` of them) with the configured loss.

    Args:
        rows: Input arrays of the training rows (grouped by user for the listwise loss).
        labels: [R] 0/1 labels aligned with `rows`.
        config: Hyperparameters.
        occupations: Occupation vocabulary.
        movie_ids: Movie-id vocabulary.
        weights: [R] row weights (None: all 1).
        verbose: Keras `fit` verbosity.
    """
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    members: list[RankerNet] = []
    history: dict[str, list[float]] = {}
    started = time.perf_counter()
    for member in range(config.ensemble):
        seed = config.seed + member
        net, fitted = _train_one(
            rows, labels, config, seed, occupations, movie_ids, weights, verbose
        )
        members.append(net)
        for key, values in fitted.items():
            history[key if member == 0 else f"{key}_{member}"] = values
    seconds = time.perf_counter() - started
    model: keras.Model = members[0] if len(members) == 1 else RankerEnsemble(members)
    return TrainedRanker(net=model, history=history, seconds=seconds)


def _train_one(
    rows: InputRows,
    labels: np.ndarray,
    config: RankerConfig,
    seed: int,
    occupations: Sequence[str],
    movie_ids: Sequence[int],
    weights: np.ndarray | None,
    verbose: int,
) -> tuple[RankerNet, dict[str, list[float]]]:
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    count = len(labels)
    sample = rng.choice(count, size=min(count, _SAMPLE_ROWS), replace=False)
    net = RankerNet(
        config,
        {k: v[sample] for k, v in rows.arrays.items()},
        occupations=occupations,
        movie_ids=movie_ids,
    )
    task = RankerTask(net, config.loss)
    if config.loss == "softmax":
        data = padded_lists(rows, labels.astype(np.float32), weights)
        examples = len(data[MASK])
    else:
        data = {**rows.arrays, LABEL: labels.astype(np.float32)}
        if weights is not None:
            data[WEIGHT] = weights.astype(np.float32)
        examples = count
    steps = config.epochs * -(-examples // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    task.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule))
    dataset = (
        tf.data.Dataset.from_tensor_slices(data)
        .shuffle(examples, seed=seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    fit = task.fit(dataset, epochs=config.epochs, verbose=verbose)
    return net, {k: [float(x) for x in v] for k, v in fit.history.items()}


def predict(net: keras.Model, arrays: dict[str, np.ndarray], batch_size: int = 8192) -> np.ndarray:
    """Logits [R] of many rows, scored in batches."""
    total = len(next(iter(arrays.values())))
    out = []
    for lo in range(0, total, batch_size):
        batch = {k: tf.constant(v[lo : lo + batch_size]) for k, v in arrays.items()}
        out.append(net(batch, training=False).numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)
