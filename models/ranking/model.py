"""The ranking network: raw named inputs -> one relevance logit per candidate.

Every transformation of the raw inputs (logs of counts and ranks, gating by the in-source
flags, genre affinity dot products, string lookups, standardization) is part of the model,
so the exported SavedModel takes exactly the values `ranker_inputs` builds.

`RankerNet` scores rows independently (a row never sees another candidate), so a request's
scores do not depend on which other requests the Ranking deployment batched with it.
`RankerTask` wraps it for training: pointwise binary cross-entropy over candidate rows, or a
listwise softmax cross-entropy over each user's (padded, masked) candidate list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from models.ranking.config import RankerConfig
from models.tensorflow_env import keras, tf, tfrs

LABEL = "__label__"
MASK = "__mask__"
WEIGHT = "__weight__"

Inputs = Mapping[str, tf.Tensor]


def _f(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def _col(x: tf.Tensor) -> tf.Tensor:
    return tf.reshape(_f(x), [-1, 1])


def _log1p_pos(x: tf.Tensor) -> tf.Tensor:
    return tf.math.log1p(tf.maximum(_f(x), 0.0))


EMBEDDED = ("gender", "occupation", "movie_id")
"""Features that are lookups/embeddings rather than columns of `derived_features`."""


def derived_features(inputs: Inputs, features: Sequence[str]) -> tf.Tensor:
    """The continuous features (by name, see `features_catalog`) of raw inputs: [N, F]."""
    columns: list[tf.Tensor] = []
    for name in features:
        if name in EMBEDDED:
            continue
        columns += [tf.reshape(c, [tf.shape(c)[0], -1]) for c in _derive(name, inputs)]
    return tf.concat(columns, axis=1)


def _derive(name: str, x: Inputs) -> list[tf.Tensor]:
    if name in ("in_retrieval", "in_content", "in_itemcf"):
        return [_f(x[name])]
    if name == "in_both":
        return [_f(x["in_retrieval"]) * _f(x["in_content"])]
    source, _, kind = name.partition("_")
    if source in ("retrieval", "content", "itemcf") and kind == "log_rank":
        return [_f(x[f"in_{source}"]) * _log1p_pos(x[f"{source}_rank"])]
    if source in ("retrieval", "content", "itemcf") and kind == "score":
        return [_f(x[f"in_{source}"]) * _f(x[f"{source}_score"])]
    if name == "merged_score":
        return [_f(x["merged_score"]) * 60.0]
    if name == "log_count":
        return [_log1p_pos(x["movie_rating_count"])]
    if name == "popularity_pct":
        return [_f(x["movie_popularity_pct"])]
    if name == "log_recent":
        return [_log1p_pos(x["movie_recent_rating_count"])]
    if name == "trend":
        recent = _log1p_pos(x["movie_recent_rating_count"])
        return [recent - _log1p_pos(x["movie_rating_count"])]
    if name == "rating_mean":
        rated = tf.cast(x["movie_rating_count"] > 0, tf.float32)
        return [rated * (_f(x["movie_rating_mean"]) - 3.5)]
    if name == "year":
        year = _f(x["movie_year"])
        known = tf.cast(year > 0, tf.float32)
        return [known, known * (year - 1990.0) / 10.0]
    if name == "genres":
        return [_f(x["movie_genre_vector"])]
    if name == "user_log_count":
        return [_log1p_pos(x["user_rating_count"])]
    if name == "user_rating_mean":
        rated = tf.cast(x["user_rating_count"] > 0, tf.float32)
        return [rated * (_f(x["user_rating_mean"]) - 3.5)]
    if name == "genre_affinity":
        genres, affinity = _f(x["movie_genre_vector"]), _f(x["user_genre_affinity"])
        dot = tf.reduce_sum(genres * affinity, axis=1)
        return [dot, dot / tf.maximum(tf.reduce_sum(genres, axis=1), 1.0)]
    if name == "genre_products":
        return [_f(x["movie_genre_vector"]) * _f(x["user_genre_affinity"]) * 5.0]
    if name == "age":
        age = _f(x["user_age"])
        return [tf.cast(age > 0, tf.float32), age / 10.0]
    raise ValueError(f"unknown ranker feature {name!r}")


class RankerNet(keras.Model):
    """Scores candidate rows: a dict of [N] / [N, d] raw inputs -> [N] logits."""

    def __init__(
        self,
        config: RankerConfig,
        feature_sample: Mapping[str, np.ndarray],
        occupations: Sequence[str] = (),
        movie_ids: Sequence[int] = (),
        **kwargs: object,
    ) -> None:
        """Builds the network and fits its standardization to `feature_sample`.

        Args:
            config: Hyperparameters (`features` decides the inputs used).
            feature_sample: Raw inputs of (a sample of) the training rows; the mean and
                variance of every derived feature are computed from them.
            occupations: Occupation vocabulary (feature group "demographics").
            movie_ids: Movie-id vocabulary (feature group "movie_id").
        """
        super().__init__(**kwargs)
        self.feature_names = tuple(config.features)
        reg = keras.regularizers.l2(config.l2) if config.l2 > 0 else None
        sample = derived_features(
            {k: tf.constant(v) for k, v in feature_sample.items()}, self.feature_names
        )
        self._norm = keras.layers.Normalization(axis=-1)
        self._norm.adapt(sample.numpy())
        self._lookups: dict[str, keras.layers.Layer] = {}
        self._embeddings: dict[str, keras.layers.Layer] = {}
        if "gender" in self.feature_names:
            self._lookups["user_gender"] = keras.layers.StringLookup(
                vocabulary=["F", "M"], output_mode="one_hot", num_oov_indices=1
            )
        if "occupation" in self.feature_names:
            vocab = sorted({str(o) for o in occupations if str(o)}) or ["none"]
            self._lookups["user_occupation"] = keras.layers.StringLookup(
                vocabulary=vocab, num_oov_indices=1
            )
            self._embeddings["user_occupation"] = keras.layers.Embedding(
                len(vocab) + 1, 4, embeddings_regularizer=reg
            )
        if "movie_id" in self.feature_names:
            ids = np.asarray(sorted({int(m) for m in movie_ids}), dtype=np.int64)
            self._lookups["movie_id"] = keras.layers.IntegerLookup(
                vocabulary=ids, num_oov_indices=1
            )
            self._embeddings["movie_id"] = keras.layers.Embedding(
                len(ids) + 1,
                config.id_embedding_dim,
                embeddings_regularizer=reg,
                embeddings_initializer=keras.initializers.RandomNormal(0.0, 0.01),
            )
        self._hidden = [
            keras.layers.Dense(units, activation="relu", kernel_regularizer=reg)
            for units in config.hidden_dims
        ]
        self._dropout = [keras.layers.Dropout(config.dropout) for _ in config.hidden_dims]
        self._out = keras.layers.Dense(1, kernel_regularizer=reg)

    def get_config(self) -> dict[str, object]:
        """Keras serialization stub: the ranker is restored with `tf.saved_model.load`."""
        return {"name": self.name}

    def call(self, inputs: Inputs, training: bool | None = None) -> tf.Tensor:
        parts = [self._norm(derived_features(inputs, self.feature_names))]
        if "user_gender" in self._lookups:
            parts.append(self._lookups["user_gender"](tf.reshape(inputs["user_gender"], [-1])))
        if "user_occupation" in self._lookups:
            occupation = self._lookups["user_occupation"](inputs["user_occupation"])
            parts.append(self._embeddings["user_occupation"](occupation))
        if "movie_id" in self._lookups:
            movie = self._lookups["movie_id"](inputs["movie_id"])
            parts.append(self._embeddings["movie_id"](movie))
        x = tf.concat(parts, axis=1)
        for dense, dropout in zip(self._hidden, self._dropout, strict=True):
            x = dropout(dense(x), training=training)
        return tf.reshape(self._out(x), [-1])


class RankerTask(tfrs.Model):
    """Training wrapper: pointwise BCE on rows, or listwise softmax over padded lists.

    Batches are dicts of the raw inputs plus `LABEL` (and `MASK` for lists): [B] / [B, d]
    rows for "bce", [B, L] / [B, L, d] lists for "softmax".
    """

    def __init__(self, net: RankerNet, loss: str) -> None:
        super().__init__()
        self.net = net
        self.listwise = loss == "softmax"
        self._bce = keras.losses.BinaryCrossentropy(from_logits=True)

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        labels = _f(features[LABEL])
        weight = features.get(WEIGHT)
        inputs = {k: v for k, v in features.items() if k not in (LABEL, MASK, WEIGHT)}
        if not self.listwise:
            logits = self.net(inputs, training=training)
            return self._bce(labels[:, None], logits[:, None], sample_weight=weight)
        shape = tf.shape(labels)  # [B, L]
        flat = {
            k: tf.reshape(v, tf.concat([[-1], tf.shape(v)[2:]], axis=0)) for k, v in inputs.items()
        }
        logits = tf.reshape(self.net(flat, training=training), shape)
        mask = tf.cast(features[MASK], tf.bool)
        logits = tf.where(mask, logits, tf.fill(shape, -1e9))
        labels = labels * _f(mask)
        positives = tf.reduce_sum(labels, axis=1)
        log_probs = tf.nn.log_softmax(logits, axis=1)
        per_list = -tf.reduce_sum(labels * log_probs, axis=1) / tf.maximum(positives, 1.0)
        weights = _f(positives > 0) * (_f(weight) if weight is not None else 1.0)
        return tf.reduce_sum(per_list * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


class RankerEnsemble(keras.Model):
    """Averages the logits of several `RankerNet`s (same inputs, different seeds)."""

    def __init__(self, members: Sequence[RankerNet], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.members = list(members)

    def get_config(self) -> dict[str, object]:
        """Keras serialization stub: the ranker is restored with `tf.saved_model.load`."""
        return {"name": self.name}

    def call(self, inputs: Inputs, training: bool | None = None) -> tf.Tensor:
        logits = [member(inputs, training=training) for member in self.members]
        return tf.add_n(logits) / float(len(logits))


class RankerModule(tf.Module):
    """What gets saved: `serving_default` maps the named inputs to {"scores": [N] float32}.

    Scores are the sigmoid of the network's logit (a relevance probability for the
    pointwise loss; a monotone transform of the listwise logit otherwise).
    """

    def __init__(self, net: keras.Model, signature: Mapping[str, tf.TensorSpec]) -> None:
        super().__init__()
        self.net = net

        @tf.function(input_signature=[dict(signature)])
        def serve(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
            logits = self.net(features, training=False)
            return {"scores": tf.sigmoid(logits)}

        self.serve = serve
