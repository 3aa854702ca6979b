"""The ranker: a TFRS-trained network that re-orders the merged candidates for top-k quality.

Modules (one concept each):

* `config`     - `RankerConfig` (with `CandidateConfig`, the candidate-set settings).
* `candidates` - candidate lists exactly as the Controller makes them (merge, seen filter).
* `inputs`     - the `inputs.json` spec and `ranker_inputs(...)`, the one input builder.
* `features`   - Feast reads of the `ranker_v1` service, point in time.
* `dataset`    - fit/label split, labels and timestamps, input arrays of many rows.
* `model`      - `RankerNet` (raw inputs -> logit) and its training wrapper.
* `train`      - `train_ranker(...)`.
* `export`     - `export_ranker(...)`: the SavedModel and `inputs.json`.
* `runtime`    - `load_ranker(...) -> Ranker` (the SavedModel from disk, checked against
  `inputs.json`) and `query_inputs(...)`, a serving request's input arrays.
* `scoring`    - ranks candidate lists with a scorer.
* `build`      - `build_ranker(...)`, the pipeline step.

Names are loaded lazily, so `config`, `candidates`, `inputs` and `runtime` import without
TensorFlow (`runtime` imports it when a ranker is loaded).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CandidateConfig": "models.ranking.config",
    "RankerConfig": "models.ranking.config",
    "build_candidates": "models.ranking.candidates",
    "ranker_inputs": "models.ranking.inputs",
    "inputs_document": "models.ranking.inputs",
    "input_spec": "models.ranking.inputs",
    "build_ranker": "models.ranking.build",
    "export_ranker": "models.ranking.export",
    "load_ranker": "models.ranking.runtime",
    "Ranker": "models.ranking.runtime",
    "query_inputs": "models.ranking.runtime",
    "train_ranker": "models.ranking.train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
