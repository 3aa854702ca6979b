"""Writes the ranker (`saved_model/` + `inputs.json`); `models.ranking.runtime` loads it.

Layout of a ranking directory:

    saved_model/   tf.saved_model, signature `serving_default`: named [N] / [N, d] inputs
                   -> {"scores": [N] float32}
    inputs.json    every input: name, dtype, per-candidate shape, source, default
                   (see `movierec.ranking_inputs` for the contract)
    ranker.json    configuration, build metrics and timings
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.ranking.config import RankerConfig
from models.ranking.inputs import inputs_document
from models.ranking.model import RankerModule
from models.ranking.runtime import METADATA_FILE
from models.tensorflow_env import keras, tf
from movierec.ranking_inputs import INPUTS_FILE, SAVED_MODEL_DIR, RankerSpec

__all__ = ["METADATA_FILE", "export_ranker", "signature_specs"]

_TF_DTYPES = {
    "float32": tf.float32,
    "float64": tf.float64,
    "int32": tf.int32,
    "int64": tf.int64,
    "bool": tf.bool,
    "string": tf.string,
}


def signature_specs(spec: RankerSpec) -> dict[str, tf.TensorSpec]:
    """The serving signature's TensorSpecs: [None] or [None, d] per input."""
    return {
        i.name: tf.TensorSpec([None, *i.shape], _TF_DTYPES[i.dtype], name=i.name)
        for i in spec.inputs
    }


def export_ranker(
    net: keras.Model,
    config: RankerConfig,
    out_dir: Path,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Writes `out_dir/saved_model`, `out_dir/inputs.json` and `out_dir/ranker.json`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = inputs_document(config)
    spec = RankerSpec.from_dict(document)
    module = RankerModule(net, signature_specs(spec))
    tf.saved_model.save(
        module,
        str(out_dir / SAVED_MODEL_DIR),
        signatures={"serving_default": module.serve.get_concrete_function()},
    )
    (out_dir / INPUTS_FILE).write_text(json.dumps(document, indent=2) + "\n")
    meta = {
        "config": config.to_dict(),
        "tensorflow": tf.__version__,
        **(metadata or {}),
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return out_dir
