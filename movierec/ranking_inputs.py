"""The ranker's input contract (`ranking/inputs.json`) and the tensors built from it.

Pure numpy (no TensorFlow), so the Controller-side shapes can be unit-tested alone.

`inputs.json`::

    {
      "signature": "serving_default",      # optional, this default
      "output": "scores",                  # optional, this default
      "inputs": [
        {"name": "user_genre_affinity", "dtype": "float32", "shape": [19],
         "source": "user"},
        {"name": "movie_rating_mean", "dtype": "float32", "shape": [],
         "source": "movie", "default": 3.5},
        {"name": "retrieval_score", "dtype": "float32", "shape": [],
         "source": "candidate"},
        ...
      ]
    }

Per input:

* `name`: the signature's input name.
* `dtype`: float32, float64, int32, int64, bool or string.
* `shape`: the per-candidate shape: `[]` gives a `[N]` tensor, `[d]` a `[N, d]` one (a
  leading batch dimension, `null` or -1, is accepted and dropped).
* `source`: where the value comes from:
    - `user`: a user feature (Feast name, e.g. `user_rating_mean`), repeated for every
      candidate; `user_id` is the user's id.
    - `movie`: a candidate movie feature (Feast name, e.g. `movie_genre_vector`);
      `movie_id` is the candidate's id.
    - `candidate`: a value the Controller computes per candidate: `merged_score` (the
      reciprocal-rank-fusion score), `<source>_score` (that source's own score),
      `<source>_rank` (1-based rank in that source's list) and `in_<source>` (1 if that
      source proposed the movie), for source in retrieval, content, popular.
* `feature`: the feature to read, when it differs from `name` (optional).
* `default`: the value of a missing or null feature (optional; 0, or "" for strings);
  a scalar is broadcast to vector inputs.

The signature returns `{output: [N] float32}` (a trailing dimension of 1 is squeezed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

INPUTS_FILE = "inputs.json"
SAVED_MODEL_DIR = "saved_model"

Source = Literal["user", "movie", "candidate"]
SOURCES: tuple[Source, ...] = ("user", "movie", "candidate")
DTYPES: dict[str, Any] = {
    "float32": np.float32,
    "float64": np.float64,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
    "string": object,
}


class RankerSpecError(ValueError):
    """`inputs.json` is malformed or does not match the SavedModel."""


@dataclass(frozen=True)
class RankerInput:
    """One input tensor of the ranker.

    Attributes:
        name: Signature input name.
        dtype: Key of `DTYPES`.
        shape: Per-candidate shape: () or (d,).
        source: "user", "movie" or "candidate".
        feature: Feature name read from the source.
        default: Value of a missing feature.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    source: Source
    feature: str
    default: Any

    @property
    def numpy_dtype(self) -> Any:
        """The numpy dtype (object for strings)."""
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class RankerSpec:
    """The parsed `inputs.json`."""

    inputs: tuple[RankerInput, ...]
    signature: str = "serving_default"
    output: str = "scores"

    def by_source(self, source: Source) -> list[RankerInput]:
        """The inputs read from one source."""
        return [i for i in self.inputs if i.source == source]

    @property
    def movie_features(self) -> list[str]:
        """Names of the movie features the ranker reads (`movie_id` excluded)."""
        return [i.feature for i in self.by_source("movie") if i.feature != "movie_id"]

    @property
    def user_features(self) -> list[str]:
        """Names of the user features the ranker reads (`user_id` excluded)."""
        return [i.feature for i in self.by_source("user") if i.feature != "user_id"]

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> RankerSpec:
        """Parses the JSON document (an object with `inputs`, or a bare list of inputs).

        Raises:
            RankerSpecError: Unknown dtype or source, bad shape, duplicate names.
        """
        if isinstance(raw, Mapping):
            entries = raw.get("inputs")
            signature = str(raw.get("signature", "serving_default"))
            output = str(raw.get("output", "scores"))
        else:
            entries, signature, output = raw, "serving_default", "scores"
        if not isinstance(entries, Sequence) or not entries:
            raise RankerSpecError("inputs.json must list at least one input")
        inputs = tuple(_parse_input(entry) for entry in entries)
        names = [i.name for i in inputs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise RankerSpecError(f"duplicate input names: {duplicates}")
        return cls(inputs, signature, output)

    @classmethod
    def load(cls, path: Path) -> RankerSpec:
        """Reads and parses an `inputs.json` file."""
        try:
            raw = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RankerSpecError(f"{path}: not valid JSON: {exc}") from None
        return cls.from_dict(raw)


def _parse_input(entry: Mapping[str, Any]) -> RankerInput:
    if not isinstance(entry, Mapping) or "name" not in entry:
        raise RankerSpecError(f"each input needs a name: {entry!r}")
    name = str(entry["name"])
    dtype = str(entry.get("dtype", "float32"))
    if dtype not in DTYPES:
        raise RankerSpecError(f"input {name!r}: unknown dtype {dtype!r}; known: {list(DTYPES)}")
    source = entry.get("source")
    if source not in SOURCES:
        raise RankerSpecError(f"input {name!r}: source must be one of {SOURCES}, not {source!r}")
    shape = [d for d in entry.get("shape", []) or []]
    if len(shape) >= 1 and shape[0] in (None, -1) and (len(shape) == 2 or len(shape) == 1):
        # A leading batch dimension: [None] is a scalar per candidate, [None, d] a vector.
        shape = shape[1:]
    if len(shape) > 1 or any(not isinstance(d, int) or d <= 0 for d in shape):
        raise RankerSpecError(f"input {name!r}: shape must be [] or [d] per candidate: {shape}")
    default = entry.get("default", "" if dtype == "string" else 0)
    return RankerInput(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        source=source,
        feature=str(entry.get("feature", name)),
        default=default,
    )


@dataclass
class RankBlock:
    """One request's candidates, as the Controller sends them to the Ranking deployment.

    Attributes:
        user_id: The user.
        user: User features (name -> value; values may be None).
        movie_ids: [N] candidate ids.
        movies: Movie features (name -> [N] values, aligned with `movie_ids`).
        candidates: Candidate values (name -> [N] values), see the module docstring.
    """

    user_id: int
    user: Mapping[str, Any]
    movie_ids: Sequence[int]
    movies: Mapping[str, Sequence[Any]]
    candidates: Mapping[str, Sequence[Any]]

    def __len__(self) -> int:
        return len(self.movie_ids)


def candidate_columns(
    source_scores: Sequence[Mapping[str, float]],
    source_ranks: Sequence[Mapping[str, int]],
    merged_scores: Sequence[float],
    sources: Sequence[str],
) -> dict[str, list[Any]]:
    """The `candidate` values of N merged candidates (missing ones None: the spec default).

    Args:
        source_scores: Per candidate, source -> that source's score.
        source_ranks: Per candidate, source -> rank in that source.
        merged_scores: Per candidate, the fused score.
        sources: All source names.
    """
    out: dict[str, list[Any]] = {"merged_score": [float(s) for s in merged_scores]}
    for source in sources:
        out[f"{source}_score"] = [s.get(source) for s in source_scores]
        out[f"{source}_rank"] = [r.get(source) for r in source_ranks]
        out[f"in_{source}"] = [1.0 if source in s else 0.0 for s in source_scores]
    return out


def build_inputs(spec: RankerSpec, block: RankBlock) -> dict[str, np.ndarray]:
    """The input arrays of one block: [N] or [N, d] per spec input.

    Raises:
        RankerSpecError: A feature value has the wrong length for its input.
    """
    n = len(block)
    out: dict[str, np.ndarray] = {}
    for spec_input in spec.inputs:
        feature = spec_input.feature
        column: Sequence[Any] | None
        if spec_input.source == "user":
            value = block.user_id if feature == "user_id" else block.user.get(feature)
            column = [value] * n
        elif spec_input.source == "movie":
            column = block.movie_ids if feature == "movie_id" else block.movies.get(feature)
        else:
            column = block.candidates.get(feature)
        if column is None:
            column = [None] * n
        if len(column) != n:
            raise RankerSpecError(
                f"input {spec_input.name!r}: {len(column)} values for {n} candidates"
            )
        out[spec_input.name] = _array(spec_input, column)
    return out


def _array(spec_input: RankerInput, column: Sequence[Any]) -> np.ndarray:
    dtype = spec_input.numpy_dtype
    if not spec_input.shape:
        if isinstance(column, np.ndarray) and column.dtype.kind == "f" and dtype is not object:
            # a float array (candidate columns): NaN is missing, filled without a Python loop
            return np.where(np.isnan(column), spec_input.default, column).astype(dtype)
        values = [spec_input.default if _missing(v) else v for v in column]
        return np.asarray(values, dtype=dtype)
    (dim,) = spec_input.shape
    default = spec_input.default
    default_row = (
        np.full(dim, default, dtype=dtype)
        if np.ndim(default) == 0
        else np.asarray(default, dtype=dtype)
    )
    if default_row.shape != (dim,):
        raise RankerSpecError(f"input {spec_input.name!r}: default has the wrong length")
    if not any(_missing(v) for v in column):
        try:  # fast path: every row present and of the right length
            matrix = np.asarray(list(column), dtype=dtype)
        except ValueError:
            matrix = np.empty(0)
        if matrix.shape == (len(column), dim):
            return matrix
    matrix = np.empty((len(column), dim), dtype=dtype)
    for row, value in enumerate(column):
        if _missing(value):
            matrix[row] = default_row
            continue
        vector = np.asarray(value, dtype=dtype).reshape(-1)
        if vector.shape != (dim,):
            raise RankerSpecError(
                f"input {spec_input.name!r}: a value has {vector.size} entries, expected {dim}"
            )
        matrix[row] = vector
    return matrix


def _missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float | np.floating) and value != value  # NaN (any float width)


def concat_inputs(blocks: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenates per-block input arrays along the candidate axis."""
    names = list(blocks[0])
    return {name: np.concatenate([b[name] for b in blocks], axis=0) for name in names}


def split_scores(scores: np.ndarray, sizes: Sequence[int]) -> list[np.ndarray]:
    """Splits a [sum(sizes)] score vector back into one array per block."""
    bounds = np.cumsum(sizes)[:-1]
    return [part.astype(np.float32, copy=False) for part in np.split(scores, bounds)]
