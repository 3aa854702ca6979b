"""Two-tower retrieval: TFRS user/movie towers, in-batch or full softmax, BruteForce export.

Modules (one concept each):

* `config`   - `RetrievalConfig`, the hyperparameters.
* `features` - normalized tables -> numpy feature arrays (no TensorFlow).
* `towers`   - `UserTower`, `MovieTower`.
* `model`    - `TwoTowerModel` (the `tfrs.tasks.Retrieval` loss).
* `train`    - `train_retrieval(...) -> TrainResult`.
* `export`   - `export_retrieval(...)`: SavedModel (top-K signature) + movie embeddings.
* `runtime`  - `RetrievalRuntime` (the served model: SavedModel + user side features),
  `load_retriever(...) -> Retriever`, latency measurement.

Importing TensorFlow happens in `models.tensorflow_env`, which sets `TF_USE_LEGACY_KERAS=1`
first (TFRS needs Keras 2). The names below are loaded lazily so that `config` and `features`
stay importable without TensorFlow.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RetrievalConfig": "models.retrieval.config",
    "TrainResult": "models.retrieval.train",
    "train_retrieval": "models.retrieval.train",
    "export_retrieval": "models.retrieval.export",
    "RetrievalRuntime": "models.retrieval.runtime",
    "Retriever": "models.retrieval.runtime",
    "UserSideFeatures": "models.retrieval.runtime",
    "load_retriever": "models.retrieval.runtime",
    "measure_latency": "models.retrieval.runtime",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
