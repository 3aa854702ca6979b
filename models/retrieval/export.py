"""Exports a trained model: a SavedModel answering top-K queries, plus movie embeddings.

Layout of the export directory:

    saved_model/            tf.saved_model with four signatures (see `RetrievalModule`)
    movie_embeddings.parquet  movie_id int64, embedding list<float32> (length D)
    metadata.json           config, K, D, user inputs, versions, training time
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.retrieval.runtime import METADATA_FILE, SAVED_MODEL_DIR
from models.retrieval.train import TrainResult
from models.tensorflow_env import tf, tfrs

MOVIE_EMBEDDINGS_FILE = "movie_embeddings.parquet"
DEFAULT_K = 500

_STRING_FEATURES = ("gender", "occupation", "zip_code")


def user_input_signature(feature_names: tuple[str, ...]) -> dict[str, tf.TensorSpec]:
    """Returns the [B]-shaped TensorSpecs of the user inputs: user_id plus `feature_names`."""
    specs = {"user_id": tf.TensorSpec([None], tf.int64, name="user_id")}
    for name in feature_names:
        dtype = tf.string if name in _STRING_FEATURES else tf.int64
        specs[name] = tf.TensorSpec([None], dtype, name=name)
    return specs


class RetrievalModule(tf.Module):
    """What gets saved. Signatures (inputs and outputs are dicts of tensors):

    * `serving_default`: user inputs ([B] each: `user_id` int64 and the side features the
      model was trained with) -> `movie_ids` [B, K] int64 and `scores` [B, K] float32, best
      first, exact dot-product top-K over the whole catalog (BruteForce).
    * `recommend_excluding`: user inputs plus `exclude_movie_ids` [B, E] int64 (padded with
      -1; unknown ids are ignored) -> the same outputs, the excluded movies removed *before*
      the top-K cut (so a heavy user's already-seen movies cannot crowd out the K). Rows with
      fewer than K remaining movies end with score -inf.
    * `user_embedding`: user inputs -> `embedding` [B, D] float32.
    * `movie_embedding`: `movie_id` [B] int64 (+ `title` [B] string, `genres` [B, G] string
      padded with "", `year` [B] int64 when the movie tower uses features) -> `embedding`
      [B, D]; lets new movies be embedded without retraining.
    """

    def __init__(self, result: TrainResult, k: int = DEFAULT_K) -> None:
        """Builds the index from the trained towers.

        Args:
            result: Output of `train_retrieval`.
            k: K of the serving signature, clipped to the catalog size. It is fixed in the
                graph: export generously and slice on the client.
        """
        super().__init__()
        model = result.model
        self.user_tower = model.user_tower
        self.movie_tower = model.movie_tower
        self.k = min(k, len(result.movies))
        candidates = model.catalog_embeddings(training=False)
        self.index = tfrs.layers.factorized_top_k.BruteForce(self.user_tower, k=self.k)
        movie_ids = tf.constant(result.movies.movie_id, dtype=tf.int64)
        self.index.index(candidates, movie_ids)
        self.candidates = tf.Variable(candidates, trainable=False, name="candidates")
        self.candidate_ids = tf.Variable(movie_ids, trainable=False, name="candidate_ids")
        self.positions = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                movie_ids, tf.range(tf.size(movie_ids, out_type=tf.int64), dtype=tf.int64)
            ),
            default_value=-1,
        )
        self.feature_names = tuple(self.user_tower.feature_names)
        self.use_movie_features = bool(self.movie_tower.use_features)

    def signatures(self) -> dict[str, Any]:
        """Returns the concrete functions to save as signatures."""
        user_spec = user_input_signature(self.feature_names)
        movie_spec = {"movie_id": tf.TensorSpec([None], tf.int64, name="movie_id")}
        if self.use_movie_features:
            movie_spec["title"] = tf.TensorSpec([None], tf.string, name="title")
            movie_spec["genres"] = tf.TensorSpec([None, None], tf.string, name="genres")
            movie_spec["year"] = tf.TensorSpec([None], tf.int64, name="year")

        @tf.function(input_signature=[user_spec])
        def recommend(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            scores, ids = self.index(features, k=self.k)
            return {"movie_ids": ids, "scores": scores}

        exclude_spec = tf.TensorSpec([None, None], tf.int64, name="exclude_movie_ids")

        @tf.function(input_signature=[user_spec, exclude_spec])
        def recommend_excluding(
            features: dict[str, tf.Tensor], exclude_movie_ids: tf.Tensor
        ) -> dict[str, tf.Tensor]:
            queries = self.user_tower(features, training=False)  # [B, D]
            scores = tf.matmul(queries, self.candidates, transpose_b=True)  # [B, N]
            positions = self.positions.lookup(exclude_movie_ids)  # [B, E], -1: ignore
            rows = tf.broadcast_to(
                tf.range(tf.shape(positions, out_type=tf.int64)[0])[:, tf.newaxis],
                tf.shape(positions, out_type=tf.int64),
            )
            valid = positions >= 0
            where = tf.stack(
                [tf.boolean_mask(rows, valid), tf.boolean_mask(positions, valid)], axis=1
            )
            scores = tf.tensor_scatter_nd_update(
                scores, where, tf.fill([tf.shape(where)[0]], float("-inf"))
            )
            top_scores, top = tf.math.top_k(scores, k=self.k)
            return {"movie_ids": tf.gather(self.candidate_ids, top), "scores": top_scores}

        @tf.function(input_signature=[user_spec])
        def user_embedding(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {"embedding": self.user_tower(features, training=False)}

        @tf.function(input_signature=[movie_spec])
        def movie_embedding(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            return {"embedding": self.movie_tower(features, training=False)}

        self.recommend = recommend
        self.recommend_excluding = recommend_excluding
        self.user_embedding = user_embedding
        self.movie_embedding = movie_embedding
        return {
            "serving_default": recommend.get_concrete_function(),
            "recommend_excluding": recommend_excluding.get_concrete_function(),
            "user_embedding": user_embedding.get_concrete_function(),
            "movie_embedding": movie_embedding.get_concrete_function(),
        }


def movie_embeddings_frame(result: TrainResult) -> pd.DataFrame:
    """Returns the catalog embeddings: columns movie_id (int64), embedding ([D] float32)."""
    vectors = result.model.catalog_embeddings(training=False).numpy().astype(np.float32)
    return pd.DataFrame({"movie_id": result.movies.movie_id, "embedding": list(vectors)})


def write_movie_embeddings(result: TrainResult, path: str | Path) -> Path:
    """Writes `movie_embeddings_frame` to parquet (embedding as list<float32>)."""
    frame = movie_embeddings_frame(result)
    table = pa.table(
        {
            "movie_id": pa.array(frame["movie_id"].to_numpy(), pa.int64()),
            "embedding": pa.array([v.tolist() for v in frame["embedding"]], pa.list_(pa.float32())),
        }
    )
    path = Path(path)
    pq.write_table(table, path)
    return path


def export_retrieval(result: TrainResult, export_dir: str | Path, k: int = DEFAULT_K) -> Path:
    """Writes the SavedModel, the movie embeddings and metadata.json to `export_dir`.

    Args:
        result: Output of `train_retrieval`.
        export_dir: Target directory (created; existing files are overwritten).
        k: K of the serving signature (see `RetrievalModule`).

    Returns:
        `export_dir` as a Path.
    """
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    module = RetrievalModule(result, k=k)
    signatures = module.signatures()
    tf.saved_model.save(module, str(export_dir / SAVED_MODEL_DIR), signatures=signatures)
    write_movie_embeddings(result, export_dir / MOVIE_EMBEDDINGS_FILE)
    metadata = {
        "k": module.k,
        "embedding_dim": result.config.embedding_dim,
        "num_movies": len(result.movies),
        "num_users": len(result.users),
        "user_features": list(module.feature_names),
        "movie_features": module.use_movie_features,
        "score": "dot_product",
        "config": result.config.to_dict(),
        "training_seconds": result.seconds,
        "final_loss": result.history["loss"][-1] if result.history.get("loss") else None,
        "tensorflow": tf.__version__,
        "tensorflow_recommenders": tfrs.__version__,
    }
    (export_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
    return export_dir
