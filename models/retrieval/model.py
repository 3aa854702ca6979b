"""The two-tower model: user tower, movie tower and the `tfrs.tasks.Retrieval` softmax loss."""

from __future__ import annotations

import numpy as np

from models.retrieval.config import RetrievalConfig
from models.retrieval.towers import MovieTower, UserTower
from models.tensorflow_env import tf, tfrs


class TwoTowerModel(tfrs.Model):
    """Softmax two-tower retrieval model over a fixed movie catalog.

    Training batches are dicts of user-tower inputs ([B] each) plus `movie_pos`, the [B]
    int64 0-based row of the positive movie in the catalog. The catalog's raw features are
    held as constants, so a batch only carries positions.
    """

    def __init__(
        self,
        config: RetrievalConfig,
        user_tower: UserTower,
        movie_tower: MovieTower,
        catalog: dict[str, np.ndarray],
        sampling_probability: np.ndarray,
    ) -> None:
        """Builds the model.

        Args:
            config: Hyperparameters (negatives, logQ, temperature, hard negatives...).
            user_tower: Query tower.
            movie_tower: Candidate tower.
            catalog: The movie tower inputs for all N movies (`MovieTable.as_features`).
            sampling_probability: [N] probability that a training example's positive is each
                movie (its share of training interactions); used for the logQ correction.
        """
        super().__init__()
        self.config = config
        self.user_tower = user_tower
        self.movie_tower = movie_tower
        self.catalog = {name: tf.constant(value) for name, value in catalog.items()}
        self.catalog_ids = self.catalog["movie_id"]
        self.sampling_probability = tf.constant(sampling_probability, dtype=tf.float32)
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature if config.temperature != 1.0 else None,
            num_hard_negatives=config.num_hard_negatives,
            remove_accidental_hits=config.remove_accidental_hits or config.negatives == "full",
        )

    def user_inputs(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Selects the user-tower inputs of a training batch (drops `movie_pos`/`sample_weight`)."""
        inputs = {k: v for k, v in features.items() if k not in ("movie_pos", "sample_weight")}
        if self.config.use_history:
            inputs["exclude_movie"] = features["movie_pos"] + 1
        return inputs

    def catalog_embeddings(self, training: bool = False) -> tf.Tensor:
        """Returns the [N, D] embeddings of the whole catalog."""
        return self.movie_tower(self.catalog, training=training)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Softmax loss of a batch; see `RetrievalConfig.negatives` for the two variants.

        Args:
            features: User-tower inputs, each [B], plus `movie_pos` [B] int64 and optionally
                `sample_weight` [B] float32.
            training: Keras training flag (dropout).

        Returns:
            Scalar loss (summed over the batch, as `tfrs.tasks.Retrieval` does).
        """
        positions = features["movie_pos"]
        weight = features.get("sample_weight")
        queries = self.user_tower(self.user_inputs(features), training=training)  # [B, D]
        positive_ids = tf.gather(self.catalog_ids, positions)  # [B]
        if self.config.negatives == "full":
            catalog = self.catalog_embeddings(training=training)  # [N, D]
            positives = tf.gather(catalog, positions)  # [B, D]
            batch = tf.shape(positions)[0]
            # Columns: the B positives, then the N catalog movies. Each row keeps only its own
            # positive among the first B columns; the catalog copy of the positive is removed
            # as an accidental hit, so the softmax runs exactly once over every movie.
            own = tf.eye(batch, dtype=tf.bool)
            mask = tf.concat([own, tf.ones((batch, tf.shape(catalog)[0]), tf.bool)], axis=1)
            return self.task(
                queries,
                tf.concat([positives, catalog], axis=0),
                candidate_ids=tf.concat([positive_ids, self.catalog_ids], axis=0),
                score_mask=mask,
                sample_weight=weight,
                compute_metrics=False,
                compute_batch_metrics=False,
            )
        rows = {name: tf.gather(value, positions) for name, value in self.catalog.items()}
        positives = self.movie_tower(rows, training=training)  # [B, D]
        probability = None
        if self.config.logq_correction:
            probability = tf.gather(self.sampling_probability, positions)
        return self.task(
            queries,
            positives,
            candidate_sampling_probability=probability,
            candidate_ids=positive_ids,
            sample_weight=weight,
            compute_metrics=False,
            compute_batch_metrics=False,
        )
