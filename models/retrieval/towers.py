"""The user (query) and movie (candidate) towers.

Both towers take raw feature values (ids, strings, years) and do their own preprocessing, so
the exported SavedModel needs no feature code on the serving side. Unknown ids and strings map
to an out-of-vocabulary bucket instead of failing.
"""

from __future__ import annotations

import numpy as np

from models.retrieval.config import RetrievalConfig
from models.tensorflow_env import keras, tf

AGE_BOUNDARIES = [1.0, 18.0, 25.0, 35.0, 45.0, 50.0, 56.0]
YEAR_BOUNDARIES = [1.0, *[float(y) for y in range(1920, 2031, 5)]]


def _regularizer(config: RetrievalConfig) -> keras.regularizers.Regularizer | None:
    return keras.regularizers.L2(config.l2) if config.l2 > 0 else None


def _string_vocabulary(values: np.ndarray) -> list[str]:
    return sorted({str(v) for v in np.asarray(values).ravel() if str(v)})


def _masked_mean(embeddings: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Averages [B, L, E] embeddings over the positions where the [B, L] mask is true -> [B, E]."""
    weights = tf.cast(mask, embeddings.dtype)
    total = tf.reduce_sum(embeddings * weights[:, :, tf.newaxis], axis=1)
    count = tf.reduce_sum(weights, axis=1, keepdims=True)
    return total / tf.maximum(count, 1.0)


def _sparse_mean(table: tf.Tensor, positions: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Mean of `table` rows listed in [B, H] `positions` where the [B, H] mask holds -> [B, E].

    A sparse [B, N] x [N, E] product: its gradient w.r.t. the table is one dense [N, E] matrix
    instead of B*H gathered rows, which is much cheaper for long histories.
    """
    where = tf.where(mask)  # [nnz, 2]: (row, slot)
    rows = where[:, 0]
    cols = tf.gather_nd(positions, where)
    counts = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1)
    weights = tf.gather(1.0 / tf.maximum(counts, 1.0), rows)
    batch = tf.shape(positions, out_type=tf.int64)[0]
    sparse = tf.SparseTensor(
        tf.stack([rows, cols], axis=1), weights, tf.stack([batch, tf.shape(table, tf.int64)[0]])
    )
    return tf.sparse.sparse_dense_matmul(sparse, table)


def _normalized(values: tf.Tensor, mean: float, std: float) -> tf.Tensor:
    """[B] raw numbers (0 = unknown) -> [B, 1] standardized values, 0 for unknown."""
    values = tf.cast(values, tf.float32)
    scaled = (values - mean) / std
    return tf.where(values > 0, scaled, tf.zeros_like(scaled))[:, tf.newaxis]


def _stats(values: np.ndarray) -> tuple[float, float]:
    known = np.asarray(values, dtype=np.float64)
    known = known[known > 0]
    if known.size == 0:
        return 0.0, 1.0
    return float(known.mean()), float(max(known.std(), 1e-6))


class _Head(keras.layers.Layer):
    """Dropout + ReLU hidden layers + linear projection to the output size (+ optional L2 norm)."""

    def __init__(self, config: RetrievalConfig, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._dropout = keras.layers.Dropout(config.dropout, seed=config.seed)
        self._hidden = [
            keras.layers.Dense(units, activation="relu", kernel_regularizer=_regularizer(config))
            for units in config.hidden_dims
        ]
        self._hidden_dropout = [
            keras.layers.Dropout(config.dropout, seed=config.seed + i + 1)
            for i in range(len(config.hidden_dims))
        ]
        self._out = keras.layers.Dense(
            config.embedding_dim, kernel_regularizer=_regularizer(config)
        )
        self._normalize = config.normalize

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        x = self._dropout(inputs, training=training)
        for dense, dropout in zip(self._hidden, self._hidden_dropout, strict=True):
            x = dropout(dense(x), training=training)
        x = self._out(x)
        if self._normalize:
            x = tf.math.l2_normalize(x, axis=-1)
        return x


class UserTower(keras.Model):
    """Maps a batch of users to [B, D] query embeddings.

    Inputs (a dict of [B] tensors): `user_id` int64 always; `age` int64, `gender`, `occupation`,
    `zip_code` string when the tower was built with side features; during training optionally
    `exclude_movie` int64, the 1-based catalog position of the positive, left out of the
    history average. Unknown user ids share one OOV embedding (and have an empty history).
    """

    def __init__(
        self,
        config: RetrievalConfig,
        user_ids: np.ndarray,
        user_features: dict[str, np.ndarray],
        history: np.ndarray | None = None,
        num_movies: int = 0,
        **kwargs: object,
    ) -> None:
        """Builds the tower.

        Args:
            config: Hyperparameters.
            user_ids: [U] known user ids (the id vocabulary).
            user_features: Side features of the known users, each [U] (see `UserTable`);
                their keys decide which inputs the tower expects.
            history: [U, H] 1-based catalog positions of each known user's training movies,
                0-padded, aligned with `user_ids`; None disables the history feature.
            num_movies: N, catalog size (needed with `history`).
        """
        super().__init__(**kwargs)
        reg = _regularizer(config)
        fdim = config.feature_embedding_dim
        self._id_lookup = keras.layers.IntegerLookup(
            vocabulary=np.asarray(user_ids, dtype=np.int64), num_oov_indices=1
        )
        self._id_embedding = keras.layers.Embedding(
            len(user_ids) + 1, config.id_embedding_dim, embeddings_regularizer=reg
        )
        self._use_id = config.use_user_id
        self._lookups: dict[str, keras.layers.Layer] = {}
        self._embeddings: dict[str, keras.layers.Layer] = {}
        self._zip_prefix_len = config.zip_prefix_len
        if "age" in user_features:
            self._age_stats = _stats(user_features["age"])
            self._lookups["age"] = keras.layers.Discretization(bin_boundaries=AGE_BOUNDARIES)
            self._embeddings["age"] = keras.layers.Embedding(
                len(AGE_BOUNDARIES) + 1, fdim, embeddings_regularizer=reg
            )
        for name in ("gender", "occupation", "zip_code"):
            if name not in user_features:
                continue
            values = np.asarray(user_features[name], dtype=object)
            if name == "zip_code":
                if config.zip_prefix_len <= 0:
                    continue
                values = np.array([str(v)[: config.zip_prefix_len] for v in values], dtype=object)
            lookup = keras.layers.StringLookup(
                vocabulary=_string_vocabulary(values), num_oov_indices=1, mask_token=None
            )
            self._lookups[name] = lookup
            self._embeddings[name] = keras.layers.Embedding(
                lookup.vocabulary_size(), fdim, embeddings_regularizer=reg
            )
        self._history: tf.Variable | None = None
        self._history_dropout = config.history_dropout
        self._seed = config.seed
        if history is not None:
            padded = np.concatenate([np.zeros((1, history.shape[1]), np.int64), history])
            self._history = tf.Variable(
                padded.astype(np.int64), trainable=False, name="history_table"
            )
            self._history_embeddings = self.add_weight(
                name="history_embeddings",
                shape=(num_movies + 1, config.id_embedding_dim),
                initializer=keras.initializers.RandomUniform(-0.05, 0.05, seed=config.seed),
                regularizer=reg,
            )
        if not (self._use_id or self._lookups or history is not None):
            raise ValueError("user tower has no inputs: enable the user id, features or history")
        self._head = _Head(config)
        self.feature_names: tuple[str, ...] = tuple(
            name for name in ("age", "gender", "occupation", "zip_code") if name in self._lookups
        )

    def get_config(self) -> dict[str, object]:
        """Keras serialization stub: the tower is restored with `tf.saved_model.load`, not Keras."""
        return {"name": self.name}

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        index = self._id_lookup(inputs["user_id"])
        parts = [self._id_embedding(index)] if self._use_id else []
        for name in ("age", "gender", "occupation", "zip_code"):
            if name not in self._lookups:
                continue
            value = inputs[name]
            if name == "zip_code":
                value = tf.strings.substr(value, 0, self._zip_prefix_len)
            if name == "age":
                parts.append(_normalized(value, *self._age_stats))
                value = tf.cast(value, tf.float32)
            parts.append(self._embeddings[name](self._lookups[name](value)))
        if self._history is not None:
            positions = tf.gather(self._history, index)  # [B, H]
            mask = positions > 0
            exclude = inputs.get("exclude_movie")
            if exclude is not None:
                mask &= positions != tf.cast(exclude, tf.int64)[:, tf.newaxis]
            if training and self._history_dropout > 0:
                keep = tf.random.uniform(tf.shape(positions)) >= self._history_dropout
                mask &= keep
            parts.append(_sparse_mean(self._history_embeddings, positions, mask))
        return self._head(tf.concat(parts, axis=-1), training=training)


class MovieTower(keras.Model):
    """Maps a batch of movies to [B, D] candidate embeddings.

    Inputs (a dict): `movie_id` [B] int64; with movie features also `title` [B] string,
    `genres` [B, G] string ("" padding), `year` [B] int64 (0 unknown). Unknown ids, genres and
    title words map to OOV buckets.
    """

    def __init__(
        self, config: RetrievalConfig, movie_features: dict[str, np.ndarray], **kwargs: object
    ) -> None:
        """Builds the tower.

        Args:
            config: Hyperparameters.
            movie_features: The catalog (see `MovieTable.as_features`); ids give the id
                vocabulary, titles the title vocabulary, genres the genre vocabulary.
        """
        super().__init__(**kwargs)
        reg = _regularizer(config)
        fdim = config.feature_embedding_dim
        movie_ids = np.asarray(movie_features["movie_id"], dtype=np.int64)
        self._id_lookup = keras.layers.IntegerLookup(vocabulary=movie_ids, num_oov_indices=1)
        self._id_embedding = keras.layers.Embedding(
            len(movie_ids) + 1, config.id_embedding_dim, embeddings_regularizer=reg
        )
        self.use_features = config.use_movie_features
        if self.use_features:
            self._genre_lookup = keras.layers.StringLookup(
                vocabulary=_string_vocabulary(movie_features["genres"]),
                mask_token="",
                num_oov_indices=1,
            )
            self._genre_embedding = keras.layers.Embedding(
                self._genre_lookup.vocabulary_size(), fdim, embeddings_regularizer=reg
            )
            self._title_vectorizer = keras.layers.TextVectorization(
                max_tokens=config.title_max_tokens,
                output_sequence_length=config.title_sequence_length,
            )
            self._title_vectorizer.adapt(np.asarray(movie_features["title"], dtype=object))
            self._title_embedding = keras.layers.Embedding(
                self._title_vectorizer.vocabulary_size(), fdim, embeddings_regularizer=reg
            )
            self._year_stats = _stats(movie_features["year"])
            self._year_buckets = keras.layers.Discretization(bin_boundaries=YEAR_BOUNDARIES)
            self._year_embedding = keras.layers.Embedding(
                len(YEAR_BOUNDARIES) + 1, fdim, embeddings_regularizer=reg
            )
        self._head = _Head(config)

    def get_config(self) -> dict[str, object]:
        """Keras serialization stub: the tower is restored with `tf.saved_model.load`, not Keras."""
        return {"name": self.name}

    def call(self, inputs: dict[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        parts = [self._id_embedding(self._id_lookup(inputs["movie_id"]))]
        if self.use_features:
            genre_ids = self._genre_lookup(inputs["genres"])  # [B, G], 0 = padding
            parts.append(_masked_mean(self._genre_embedding(genre_ids), genre_ids > 0))
            tokens = self._title_vectorizer(inputs["title"])  # [B, L], 0 = padding
            parts.append(_masked_mean(self._title_embedding(tokens), tokens > 0))
            year = inputs["year"]
            parts.append(_normalized(year, *self._year_stats))
            parts.append(self._year_embedding(self._year_buckets(tf.cast(year, tf.float32))))
        return self._head(tf.concat(parts, axis=-1), training=training)
