"""The ranker's inputs: the `inputs.json` spec and the one function that builds input arrays.

`ranker_inputs(spec, user_id, user, movies, candidates)` turns one request's raw values
(the user's Feast features, the candidates' Feast features, the merged `Candidate` list)
into the SavedModel's input dict. It is `movierec.ranking_inputs.build_inputs` (what the
Ranking deployment runs) on the `candidate_columns` the Controller computes, so training,
offline evaluation and serving build every tensor with the same code: no skew is possible.

Every feature is passed raw (counts, means, ranks, scores as the sources give them); all
transformations (logs, normalization, lookups) live inside the SavedModel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models.features.genres import GENRES
from models.ranking.candidates import SOURCES
from models.ranking.config import RankerConfig
from movierec.candidates import Candidate
from movierec.ranking_inputs import (
    INPUTS_FILE,
    SAVED_MODEL_DIR,
    RankBlock,
    RankerSpec,
    build_inputs,
    candidate_columns,
)

__all__ = [
    "INPUTS_FILE",
    "SAVED_MODEL_DIR",
    "input_spec",
    "inputs_document",
    "ranker_inputs",
]

GENRE_DIM = len(GENRES)
MEAN_RATING_DEFAULT = 3.5

# Every raw input a ranker may take: name -> (dtype, per-candidate shape, source, default,
# description). Names are the Feast feature names (ranker_v1) for user and movie inputs and
# the Controller's `candidate_columns` names for candidate inputs. A ranker's inputs.json
# lists the ones its derived features need (`models.ranking.model.FEATURES`), in this order.
_Entry = tuple[str, list[int], str, Any, str]
RAW_INPUTS: dict[str, _Entry] = {
    "retrieval_score": ("float32", [], "candidate", 0.0, "two-tower dot product"),
    "retrieval_rank": ("int64", [], "candidate", 0, "1-based rank in the retrieval list"),
    "in_retrieval": ("float32", [], "candidate", 0.0, "1 if retrieval proposed it"),
    "content_score": ("float32", [], "candidate", 0.0, "seed-aggregated content cosine"),
    "content_rank": ("int64", [], "candidate", 0, "1-based rank in the vector-search list"),
    "in_content": ("float32", [], "candidate", 0.0, "1 if vector search proposed it"),
    "itemcf_score": ("float32", [], "candidate", 0.0, "summed item-to-item similarity"),
    "itemcf_rank": ("int64", [], "candidate", 0, "1-based rank in the item-to-item list"),
    "in_itemcf": ("float32", [], "candidate", 0.0, "1 if the item-to-item source proposed it"),
    "merged_score": ("float32", [], "candidate", 0.0, "reciprocal-rank-fusion score"),
    "movie_id": ("int64", [], "movie", 0, "the candidate's id"),
    "movie_rating_count": ("int64", [], "movie", 0, "movie_features:movie_rating_count"),
    "movie_rating_mean": (
        "float32",
        [],
        "movie",
        MEAN_RATING_DEFAULT,
        "movie_features:movie_rating_mean",
    ),
    "movie_recent_rating_count": (
        "int64",
        [],
        "movie",
        0,
        "movie_features:movie_recent_rating_count",
    ),
    "movie_popularity_pct": ("float32", [], "movie", 0.0, "movie_features:movie_popularity_pct"),
    "movie_year": ("int64", [], "movie", 0, "movie_metadata:movie_year (0: unknown)"),
    "movie_genre_vector": (
        "float32",
        [GENRE_DIM],
        "movie",
        0.0,
        "movie_metadata:movie_genre_vector",
    ),
    "user_rating_count": ("int64", [], "user", 0, "user_features:user_rating_count"),
    "user_rating_mean": (
        "float32",
        [],
        "user",
        MEAN_RATING_DEFAULT,
        "user_features:user_rating_mean",
    ),
    "user_genre_affinity": (
        "float32",
        [GENRE_DIM],
        "user",
        0.0,
        "user_features:user_genre_affinity",
    ),
    "user_age": ("int64", [], "user", 0, "user_demographics:user_age (0: unknown)"),
    "user_gender": ("string", [], "user", "", "user_demographics:user_gender"),
    "user_occupation": ("string", [], "user", "", "user_demographics:user_occupation"),
}


def required_inputs(features: Sequence[str]) -> list[str]:
    """The raw inputs the derived `features` read, in `RAW_INPUTS` order."""
    from models.ranking.features_catalog import FEATURE_INPUTS

    unknown = [f for f in features if f not in FEATURE_INPUTS]
    if unknown:
        raise ValueError(f"unknown ranker features {unknown}; known: {sorted(FEATURE_INPUTS)}")
    needed = {name for f in features for name in FEATURE_INPUTS[f]}
    return [name for name in RAW_INPUTS if name in needed]


def inputs_document(config: RankerConfig) -> dict[str, Any]:
    """The `inputs.json` document of a ranker trained with `config`."""
    entries = []
    for name in required_inputs(config.features):
        dtype, shape, source, default, description = RAW_INPUTS[name]
        entries.append(
            {
                "name": name,
                "dtype": dtype,
                "shape": shape,
                "source": source,
                "default": default,
                "description": description,
            }
        )
    return {"signature": "serving_default", "output": "scores", "inputs": entries}


def input_spec(config: RankerConfig) -> RankerSpec:
    """The parsed spec (`movierec.ranking_inputs.RankerSpec`) of `inputs_document`."""
    return RankerSpec.from_dict(inputs_document(config))


def ranker_inputs(
    spec: RankerSpec,
    user_id: int,
    user: Mapping[str, Any],
    movies: Mapping[str, Sequence[Any]],
    candidates: Sequence[Candidate],
) -> dict[str, np.ndarray]:
    """The SavedModel inputs for one user's candidates: [N] or [N, d] arrays per input.

    Args:
        spec: The ranker's input spec (`RankerSpec.load(ranking_dir / "inputs.json")`).
        user_id: The user.
        user: User features by Feast name (None or NaN where missing), e.g. the
            Features deployment's answer without the history lists.
        movies: Movie features by Feast name, each a list aligned with `candidates`.
        candidates: The merged candidates (`merge_candidates` output), in any order.

    Returns:
        Input name -> array, row i for `candidates[i]`; missing values get the spec default.
    """
    columns = candidate_columns(
        [c.source_scores for c in candidates],
        [c.source_ranks for c in candidates],
        [c.merged_score for c in candidates],
        SOURCES,
    )
    block = RankBlock(
        user_id=int(user_id),
        user=user,
        movie_ids=[c.movie_id for c in candidates],
        movies=movies,
        candidates=columns,
    )
    return build_inputs(spec, block)
