"""Loads an exported retrieval SavedModel and queries it (no training code needed).

Only TensorFlow is imported (TFRS is not needed to serve: the SavedModel is self-contained).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.retrieval.export import METADATA_FILE, SAVED_MODEL_DIR
from models.tensorflow_env import configure_threads, tf

_DEFAULTS: dict[str, Any] = {"age": 0, "gender": "", "occupation": "", "zip_code": ""}


class Retriever:
    """A loaded retrieval model: user inputs in, top-K movie ids and scores out."""

    def __init__(self, export_dir: str | Path) -> None:
        """Loads `export_dir` (written by `export_retrieval`).

        Args:
            export_dir: Directory holding `saved_model/` and `metadata.json`.
        """
        export_dir = Path(export_dir)
        self.metadata: dict[str, Any] = json.loads((export_dir / METADATA_FILE).read_text())
        self.k: int = int(self.metadata["k"])
        self.feature_names: tuple[str, ...] = tuple(self.metadata["user_features"])
        self._loaded = tf.saved_model.load(str(export_dir / SAVED_MODEL_DIR))
        self._recommend = self._loaded.signatures["serving_default"]
        # Absent from exports written before the signature existed: `recommend` then drops the
        # excluded movies from the top K on the client side instead.
        self._recommend_excluding = self._loaded.signatures.get("recommend_excluding")
        self._user_embedding = self._loaded.signatures["user_embedding"]
        self._movie_embedding = self._loaded.signatures["movie_embedding"]

    def inputs(
        self, user_ids: Sequence[int] | np.ndarray, features: Mapping[str, Any] | None = None
    ) -> dict[str, tf.Tensor]:
        """Builds the signature inputs for B users.

        Args:
            user_ids: [B] user ids; unknown ids are fine (OOV bucket).
            features: Optional side features, each a [B] sequence (age int, gender,
                occupation, zip_code str). Missing features (or None entries) get the
                "unknown" value; features the model does not use are ignored.

        Returns:
            {"user_id": [B] int64, one [B] tensor per model feature}.
        """
        ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        features = features or {}
        out = {"user_id": tf.constant(ids)}
        for name in self.feature_names:
            default = _DEFAULTS[name]
            values = features.get(name)
            if values is None:
                column = [default] * len(ids)
            else:
                column = [default if v is None else v for v in np.asarray(values).reshape(-1)]
                if len(column) != len(ids):
                    raise ValueError(
                        f"feature {name!r} has {len(column)} rows, expected {len(ids)}"
                    )
            dtype = tf.int64 if isinstance(default, int) else tf.string
            out[name] = tf.constant(column, dtype=dtype)
        return out

    def recommend(
        self,
        user_ids: Sequence[int] | np.ndarray,
        features: Mapping[str, Any] | None = None,
        k: int | None = None,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns the top-k movies of each user by score.

        Args:
            user_ids: [B] user ids.
            features: Side features, see `inputs`.
            k: How many to return (<= the exported K); defaults to K.
            exclude: Optional per-user movie ids to leave out (e.g. already rated), removed
                inside the model before the top-K cut (exports older than the
                `recommend_excluding` signature: removed from the top K here instead). Rows
                left with fewer than k movies are padded with id -1 and score -inf.

        Returns:
            (movie_ids [B, k] int64, scores [B, k] float32), best first.
        """
        k = self.k if k is None else k
        if not 0 < k <= self.k:
            raise ValueError(f"k must be in 1..{self.k}, got {k}")
        inputs = self.inputs(user_ids, features)
        if exclude is None:
            out = self._recommend(**inputs)
            return out["movie_ids"].numpy()[:, :k], out["scores"].numpy()[:, :k]
        if len(exclude) != len(inputs["user_id"]):
            raise ValueError("exclude needs one list per user")
        width = max(1, max((len(row) for row in exclude), default=1))
        padded = np.full((len(exclude), width), -1, dtype=np.int64)
        for i, row in enumerate(exclude):
            padded[i, : len(row)] = np.asarray(list(row), dtype=np.int64)
        if self._recommend_excluding is None:
            out = self._recommend(**inputs)
            ids, scores = out["movie_ids"].numpy(), out["scores"].numpy()
            keep = np.array([~np.isin(ids[i], padded[i]) for i in range(len(ids))])
            scores = np.where(keep, scores, -np.inf).astype(np.float32)
            order = np.argsort(-scores, axis=1, kind="stable")
            ids = np.take_along_axis(ids, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
        else:
            out = self._recommend_excluding(**inputs, exclude_movie_ids=tf.constant(padded))
            ids, scores = out["movie_ids"].numpy(), out["scores"].numpy()
        ids, scores = ids[:, :k], scores[:, :k]
        return np.where(np.isfinite(scores), ids, -1), scores

    def user_embeddings(
        self, user_ids: Sequence[int] | np.ndarray, features: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """Returns the [B, D] float32 query embeddings of the users."""
        return self._user_embedding(**self.inputs(user_ids, features))["embedding"].numpy()

    def movie_embeddings(self, movies: Mapping[str, Any]) -> np.ndarray:
        """Embeds movies with the movie tower (e.g. movies added after training).

        Args:
            movies: `movie_id` [B] int; when the model uses movie features also `title` [B]
                str, `genres` [B, G] str padded with "", `year` [B] int (0 unknown).

        Returns:
            [B, D] float32 candidate embeddings (dot them with `user_embeddings`).
        """
        inputs = {"movie_id": tf.constant(np.asarray(movies["movie_id"], dtype=np.int64))}
        if self.metadata.get("movie_features"):
            inputs["title"] = tf.constant(np.asarray(movies["title"], dtype=object), tf.string)
            inputs["genres"] = tf.constant(np.asarray(movies["genres"], dtype=object), tf.string)
            inputs["year"] = tf.constant(np.asarray(movies["year"], dtype=np.int64))
        return self._movie_embedding(**inputs)["embedding"].numpy()


def load_retriever(
    export_dir: str | Path, intra_op_threads: int = 1, inter_op_threads: int = 1
) -> Retriever:
    """Configures TensorFlow's thread pools, then loads an exported retrieval model.

    Args:
        export_dir: Directory written by `export_retrieval`.
        intra_op_threads: TensorFlow intra-op threads; 1 is fastest for single-user queries
            and leaves the other cores to the rest of the serving process.
        inter_op_threads: TensorFlow inter-op threads.

    Returns:
        The loaded `Retriever`.
    """
    configure_threads(intra_op_threads, inter_op_threads)
    return Retriever(export_dir)


def measure_latency(
    retriever: Retriever,
    user_ids: Sequence[int],
    features: Mapping[str, Sequence[Any]] | None = None,
    repeats: int = 1000,
    warmup: int = 50,
) -> dict[str, float]:
    """Times single-user `recommend` calls (input conversion included), cycling over users.

    Args:
        retriever: A loaded retriever.
        user_ids: Users to cycle through.
        features: Optional per-user side features aligned with `user_ids`.
        repeats: Timed calls.
        warmup: Untimed calls first.

    Returns:
        {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "calls"}.
    """

    def call(i: int) -> None:
        j = i % len(user_ids)
        row = None if features is None else {n: [v[j]] for n, v in features.items()}
        retriever.recommend([user_ids[j]], row)

    for i in range(warmup):
        call(i)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - start
    times *= 1000.0
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p90_ms": float(np.percentile(times, 90)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(times.mean()),
        "calls": float(repeats),
    }
