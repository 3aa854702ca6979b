"""A tiny, real ranker that follows the Ranking contract (`ranking/saved_model` +
`ranking/inputs.json`), for the serving tests until the real ranker lands.

A tf-keras functional model (user-genre affinity . movie genres, ratings, popularity,
candidate scores, a string feature through a StringLookup), fitted for a few steps on
synthetic rows, exported with a `serving_default` signature that takes the named [N] / [N, d]
tensors and returns `scores` [N] float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from movierec.ranking_inputs import INPUTS_FILE, SAVED_MODEL_DIR

GENRE_DIM = 19

SPEC: dict[str, Any] = {
    "signature": "serving_default",
    "output": "scores",
    "inputs": [
        {"name": "user_genre_affinity", "dtype": "float32", "shape": [GENRE_DIM],
         "source": "user"},
        {"name": "user_rating_mean", "dtype": "float32", "shape": [], "source": "user",
         "default": 3.5},
        {"name": "user_gender", "dtype": "string", "shape": [], "source": "user"},
        {"name": "movie_genre_vector", "dtype": "float32", "shape": [GENRE_DIM],
         "source": "movie"},
        {"name": "movie_rating_mean", "dtype": "float32", "shape": [], "source": "movie",
         "default": 3.5},
        {"name": "movie_popularity_pct", "dtype": "float32", "shape": [], "source": "movie"},
        {"name": "movie_rating_count", "dtype": "int64", "shape": [], "source": "movie"},
        {"name": "retrieval_score", "dtype": "float32", "shape": [], "source": "candidate"},
        {"name": "content_score", "dtype": "float32", "shape": [], "source": "candidate"},
        {"name": "merged_score", "dtype": "float32", "shape": [], "source": "candidate"},
    ],
}  # fmt: skip


def _synthetic(n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    affinity = rng.dirichlet(np.ones(GENRE_DIM), size=n).astype(np.float32)
    genres = (rng.random((n, GENRE_DIM)) < 0.15).astype(np.float32)
    inputs = {
        "user_genre_affinity": affinity,
        "user_rating_mean": rng.uniform(2.5, 4.5, n).astype(np.float32),
        "user_gender": rng.choice(np.array(["M", "F", ""], dtype=object), n),
        "movie_genre_vector": genres,
        "movie_rating_mean": rng.uniform(1.0, 5.0, n).astype(np.float32),
        "movie_popularity_pct": rng.random(n).astype(np.float32),
        "movie_rating_count": rng.integers(0, 500, n).astype(np.int64),
        "retrieval_score": rng.normal(0, 1, n).astype(np.float32),
        "content_score": rng.uniform(0, 1, n).astype(np.float32),
        "merged_score": rng.uniform(0, 0.04, n).astype(np.float32),
    }
    label = (
        (affinity * genres).sum(axis=1) * 4
        + 0.3 * inputs["movie_rating_mean"]
        + 0.2 * inputs["retrieval_score"]
    )
    return inputs, (label > np.median(label)).astype(np.float32)


def export_tiny_ranker(ranking_dir: Path, seed: int = 0) -> Path:
    """Builds, fits (a few steps) and exports the tiny ranker into `ranking_dir`."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from models.tensorflow_env import tf

    keras = tf.keras
    keras.utils.set_random_seed(seed)
    specs = {entry["name"]: entry for entry in SPEC["inputs"]}
    dtypes = {"float32": tf.float32, "int64": tf.int64, "string": tf.string}
    inputs = {
        name: keras.Input(shape=tuple(e["shape"]), dtype=dtypes[e["dtype"]], name=name)
        for name, e in specs.items()
    }
    affinity = keras.layers.Dot(axes=1)(
        [inputs["user_genre_affinity"], inputs["movie_genre_vector"]]
    )
    gender = keras.layers.StringLookup(vocabulary=["M", "F"], output_mode="one_hot")(
        inputs["user_gender"]
    )
    count = keras.layers.Lambda(lambda c: tf.math.log1p(tf.cast(c, tf.float32))[:, tf.newaxis])(
        inputs["movie_rating_count"]
    )
    scalars = [
        keras.layers.Reshape((1,))(inputs[name])
        for name in (
            "user_rating_mean",
            "movie_rating_mean",
            "movie_popularity_pct",
            "retrieval_score",
            "content_score",
            "merged_score",
        )
    ]
    x = keras.layers.Concatenate()([affinity, gender, count, *scalars])
    x = keras.layers.Dense(8, activation="relu")(x)
    logit = keras.layers.Dense(1)(x)
    model = keras.Model(inputs=inputs, outputs=logit)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.BinaryCrossentropy(True))
    features, labels = _synthetic(512, np.random.default_rng(seed))
    model.fit(features, labels, epochs=2, batch_size=128, verbose=0)

    signature = {
        name: tf.TensorSpec([None, *e["shape"]], dtypes[e["dtype"]], name=name)
        for name, e in specs.items()
    }

    class Ranker(tf.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        @tf.function(input_signature=[signature])
        def serve(self, features: dict[str, Any]) -> dict[str, Any]:
            return {"scores": tf.reshape(self.model(features, training=False), [-1])}

    module = Ranker(model)
    ranking_dir.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(
        module, str(ranking_dir / SAVED_MODEL_DIR), signatures={"serving_default": module.serve}
    )
    (ranking_dir / INPUTS_FILE).write_text(json.dumps(SPEC, indent=2))
    return ranking_dir
