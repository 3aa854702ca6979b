"""The ranking runtime: the exported ranker (`saved_model/` + `inputs.json`) loaded for scoring.

One loader for everything that scores with an exported ranker: the Ranking deployment
(`deployments.ranking`), the offline evaluation (`models.evaluation.report`) and the ranker's
build (`models.ranking.build`). At load, `inputs.json` is checked against the SavedModel's
signature (input names and dtypes), so a ranker that cannot be fed fails at load, not at the
first request.

Also the one mapping from a serving request (`movierec.payloads.RankQuery` plus the
candidates' movie feature columns) to the ranker's input arrays: `query_block`,
`query_inputs`. These are pure numpy; TensorFlow is imported only when a ranker is loaded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from movierec.payloads import RankQuery
from movierec.ranking_inputs import (
    INPUTS_FILE,
    SAVED_MODEL_DIR,
    RankBlock,
    RankerSpec,
    RankerSpecError,
    build_inputs,
)

if TYPE_CHECKING:
    from models.ranking.config import RankerConfig

METADATA_FILE = "ranker.json"
"""`ranking/ranker.json`: configuration, build metrics and timings (optional when serving)."""

WARM_UP = RankBlock(user_id=0, user={}, movie_ids=[1, 2], movies={}, candidates={})
"""A two-movie block of default features: the load warm-up and the health probe."""


class Ranker:
    """An exported ranker: input arrays in, [N] float32 scores out.

    Attributes:
        spec: The parsed `inputs.json`.
        metadata: `ranker.json` ({} when absent).
        signature_inputs: The signature's inputs: name -> `tf.TensorSpec` ([None] or
            [None, d]).
    """

    def __init__(self, ranking_dir: str | Path) -> None:
        """Loads `ranking_dir` and checks `inputs.json` against the signature.

        Raises:
            RankerSpecError: `inputs.json` is invalid, or it and the signature disagree
                (missing signature, input names, dtypes).
            OSError: A file is missing.
        """
        from models.tensorflow_env import tf

        ranking_dir = Path(ranking_dir)
        self.spec = RankerSpec.load(ranking_dir / INPUTS_FILE)
        meta_path = ranking_dir / METADATA_FILE
        self.metadata: dict[str, Any] = (
            json.loads(meta_path.read_text()) if meta_path.exists() else {}
        )
        self._tf = tf
        self._loaded = tf.saved_model.load(str(ranking_dir / SAVED_MODEL_DIR))  # keeps variables
        if self.spec.signature not in self._loaded.signatures:
            raise RankerSpecError(
                f"SavedModel has no signature {self.spec.signature!r}: "
                f"{sorted(self._loaded.signatures)}"
            )
        self._fn = self._loaded.signatures[self.spec.signature]
        _, expected = self._fn.structured_input_signature
        names = {i.name for i in self.spec.inputs}
        missing, extra = sorted(names - set(expected)), sorted(set(expected) - names)
        if missing or extra:
            raise RankerSpecError(
                f"inputs.json and the signature disagree: not in the signature {missing}, "
                f"not in inputs.json {extra}"
            )
        for spec_input in self.spec.inputs:
            signature_dtype = expected[spec_input.name].dtype.name  # "float32", "string"...
            if signature_dtype != spec_input.dtype:
                raise RankerSpecError(
                    f"input {spec_input.name!r}: inputs.json says {spec_input.dtype}, "
                    f"the signature {signature_dtype}"
                )
        self.signature_inputs: dict[str, Any] = dict(expected)  # name -> tf.TensorSpec
        self._dtypes = {name: tensor_spec.dtype for name, tensor_spec in expected.items()}

    @property
    def config(self) -> RankerConfig:
        """The configuration the ranker was built with (defaults if unrecorded)."""
        from models.ranking.config import RankerConfig

        raw = self.metadata.get("config")
        return RankerConfig.from_dict(raw) if raw else RankerConfig()

    def score(self, inputs: Mapping[str, np.ndarray], batch_size: int = 16_384) -> np.ndarray:
        """Scores R rows, `batch_size` rows per model call.

        Args:
            inputs: Input name -> [R] or [R, d] array (`build_inputs`, `concat_inputs`).
            batch_size: Rows per call (bounds the memory of offline scoring).

        Returns:
            [R] float32 scores.

        Raises:
            RankerSpecError: The signature has no `spec.output`.
        """
        tf = self._tf
        total = len(next(iter(inputs.values()))) if inputs else 0
        out = []
        for lo in range(0, total, batch_size):
            tensors = {
                name: tf.constant(values[lo : lo + batch_size], dtype=self._dtypes[name])
                for name, values in inputs.items()
            }
            result = self._fn(**tensors)
            if self.spec.output not in result:
                raise RankerSpecError(
                    f"signature output has no {self.spec.output!r}: {list(result)}"
                )
            out.append(np.asarray(result[self.spec.output].numpy(), dtype=np.float32).reshape(-1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)

    def warm_up(self) -> np.ndarray:
        """Scores `WARM_UP` (the first call traces the signature): [2] float32."""
        return self.score(build_inputs(self.spec, WARM_UP))


def load_ranker(
    ranking_dir: str | Path, intra_op_threads: int = 2, inter_op_threads: int = 2
) -> Ranker:
    """Configures TensorFlow's thread pools, then loads `ranking_dir` (see `Ranker`)."""
    from models.tensorflow_env import configure_threads

    configure_threads(intra_op_threads, inter_op_threads)
    return Ranker(ranking_dir)


def query_block(query: RankQuery, movies: Mapping[str, Sequence[Any]]) -> RankBlock:
    """One request's `RankBlock`: the query plus its candidates' movie features.

    Args:
        query: The user, its features, the N candidate ids and their candidate columns
            ([N] float64, NaN where a source did not propose the movie).
        movies: Movie feature name -> [N] values aligned with `query.movie_ids` (None where
            the store has no value).
    """
    # RankBlock's columns are typed as sequences; numpy arrays serve them as well.
    return RankBlock(
        user_id=int(query.user_id),
        user=query.user,
        movie_ids=cast(Sequence[int], query.movie_ids),
        movies=movies,
        candidates=cast(Mapping[str, Sequence[Any]], query.candidates),
    )


def query_inputs(
    spec: RankerSpec, query: RankQuery, movies: Mapping[str, Sequence[Any]]
) -> dict[str, np.ndarray]:
    """The ranker's input arrays of one request: [N] or [N, d] per spec input.

    Missing values (None, NaN, an absent column) become the input's default, for int
    inputs such as `<source>_rank` too.

    Raises:
        RankerSpecError: A column has the wrong length.
    """
    return build_inputs(spec, query_block(query, movies))
