"""Writes the ranker (`saved_model/` + `inputs.json`) and loads it back for scoring.

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

import numpy as np

from models.ranking.config import RankerConfig
from models.ranking.inputs import inputs_document
from models.ranking.model import RankerModule
from models.tensorflow_env import configure_threads, keras, tf
from movierec.ranking_inputs import INPUTS_FILE, SAVED_MODEL_DIR, RankerSpec

METADATA_FILE = "ranker.json"

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


class SavedRanker:
    """An exported ranker reloaded from disk: input arrays in, [N] scores out."""

    def __init__(self, ranking_dir: Path) -> None:
        ranking_dir = Path(ranking_dir)
        self.spec = RankerSpec.load(ranking_dir / INPUTS_FILE)
        meta_path = ranking_dir / METADATA_FILE
        self.metadata: dict[str, Any] = (
            json.loads(meta_path.read_text()) if meta_path.exists() else {}
        )
        self._loaded = tf.saved_model.load(str(ranking_dir / SAVED_MODEL_DIR))
        self._fn = self._loaded.signatures[self.spec.signature]
        _, expected = self._fn.structured_input_signature
        self.signature_inputs: dict[str, tf.TensorSpec] = dict(expected)

    @property
    def config(self) -> RankerConfig:
        """The configuration the ranker was built with (defaults if unrecorded)."""
        raw = self.metadata.get("config")
        return RankerConfig.from_dict(raw) if raw else RankerConfig()

    def score(self, arrays: dict[str, np.ndarray], batch_size: int = 16_384) -> np.ndarray:
        """Scores rows: [R] float32, in batches of `batch_size` rows."""
        total = len(next(iter(arrays.values())))
        out = []
        for lo in range(0, total, batch_size):
            tensors = {
                name: tf.constant(
                    values[lo : lo + batch_size], dtype=self.signature_inputs[name].dtype
                )
                for name, values in arrays.items()
            }
            scores = self._fn(**tensors)[self.spec.output]
            out.append(np.asarray(scores.numpy(), dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def load_ranker(
    ranking_dir: Path, intra_op_threads: int = 2, inter_op_threads: int = 2
) -> SavedRanker:
    """Configures TensorFlow's thread pools, then loads `ranking_dir`."""
    configure_threads(intra_op_threads, inter_op_threads)
    return SavedRanker(ranking_dir)
