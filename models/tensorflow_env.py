"""The one place that imports TensorFlow for `models.retrieval`.

TensorFlow Recommenders 0.7.7 is written against Keras 2. TensorFlow 2.21 ships Keras 3 as
`tf.keras` unless `TF_USE_LEGACY_KERAS=1` is set *before TensorFlow is first imported*, in which
case `tf.keras` is the `tf-keras` package (Keras 2). This module sets the variable (without
overriding an explicit value) and then imports TensorFlow; every other module of the package
imports `tf`, `tfrs` and `keras` (the `tf_keras` module, i.e. `tf.keras`) from here. If
TensorFlow was already imported with Keras 3 by someone else, importing this module fails
loudly instead of producing confusing Keras errors later.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

if tf.keras.Model is not keras.Model:
    raise ImportError(
        "models.retrieval needs Keras 2 (the tf-keras package): set TF_USE_LEGACY_KERAS=1 "
        "before TensorFlow is imported anywhere in the process "
        f"(tf.keras is {tf.keras.__name__!r})."
    )

_threads_configured: tuple[int, int] | None = None


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Sets TensorFlow's CPU thread pools; a no-op if they were already set to these values.

    Must run before TensorFlow executes its first op in the process. 0 lets TensorFlow pick.

    Args:
        intra_op: Threads used inside one op (matmul, top-k).
        inter_op: Ops run concurrently.

    Raises:
        RuntimeError: If the pools were already initialized with different values.
    """
    global _threads_configured
    if _threads_configured == (intra_op, inter_op):
        return
    current = (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )
    if current == (intra_op, inter_op):
        _threads_configured = current
        return
    tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    _threads_configured = (intra_op, inter_op)


__all__ = ["configure_threads", "keras", "tf", "tfrs"]
