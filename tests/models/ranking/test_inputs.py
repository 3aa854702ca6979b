"""`ranker_inputs` and the inputs.json document, with hand-computed expectations."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from models.features.genres import GENRES
from models.ranking.config import RankerConfig
from models.ranking.inputs import input_spec, inputs_document, ranker_inputs, required_inputs
from movierec.candidates import RRF_K, merge_candidates
from movierec.ranking_inputs import RankerSpec

FEATURES = (
    "in_retrieval",
    "retrieval_log_rank",
    "retrieval_score",
    "content_score",
    "log_count",
    "rating_mean",
    "genres",
    "age",
    "gender",
)


def _genres(*names: str) -> list[float]:
    return [1.0 if g in names else 0.0 for g in GENRES]


def test_document_lists_the_inputs_the_features_read_in_catalog_order() -> None:
    document = inputs_document(RankerConfig(features=FEATURES))
    names = [entry["name"] for entry in document["inputs"]]
    assert names == [
        "retrieval_score",
        "retrieval_rank",
        "in_retrieval",
        "content_score",
        "in_content",
        "movie_rating_count",
        "movie_rating_mean",
        "movie_genre_vector",
        "user_age",
        "user_gender",
    ]
    by_name = {entry["name"]: entry for entry in document["inputs"]}
    assert by_name["movie_genre_vector"]["shape"] == [len(GENRES)]
    assert by_name["movie_rating_mean"]["default"] == 3.5
    assert by_name["retrieval_rank"]["dtype"] == "int64"
    assert {entry["source"] for entry in document["inputs"]} == {"candidate", "movie", "user"}
    assert document["signature"] == "serving_default" and document["output"] == "scores"
    # The serving side's parser accepts it unchanged.
    spec = RankerSpec.from_dict(document)
    assert [i.name for i in spec.inputs] == names
    assert spec.movie_features == ["movie_rating_count", "movie_rating_mean", "movie_genre_vector"]
    assert spec.user_features == ["user_age", "user_gender"]


def test_unknown_feature_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ranker features"):
        required_inputs(["nope"])
    with pytest.raises(ValueError, match="unknown ranker features"):
        RankerConfig(features=("in_retrieval", "nope"))


def test_ranker_inputs_by_hand() -> None:
    # Retrieval proposes 10 then 20; vector search 30 then 10. RRF (k=60):
    #   10: 1/61 + 1/62,  30: 1/61,  20: 1/62   ->  order 10, 30, 20.
    candidates = merge_candidates(
        {"retrieval": [(10, 2.5), (20, 1.5)], "content": [(30, 0.9), (10, 0.8)]}
    )
    assert [c.movie_id for c in candidates] == [10, 30, 20]
    assert math.isclose(candidates[0].merged_score, 1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    user = {"user_age": 31, "user_gender": "F", "user_rating_count": None}
    movies: dict[str, list[Any]] = {
        "movie_rating_count": [5, None, 7],
        "movie_rating_mean": [4.0, float("nan"), 3.0],
        "movie_genre_vector": [_genres("Action"), None, _genres("Drama", "War")],
    }
    spec = input_spec(RankerConfig(features=FEATURES))
    arrays = ranker_inputs(spec, 7, user, movies, candidates)

    assert list(arrays) == [i.name for i in spec.inputs]
    np.testing.assert_array_equal(
        arrays["retrieval_score"], np.array([2.5, 0.0, 1.5], dtype=np.float32)
    )
    np.testing.assert_array_equal(arrays["retrieval_rank"], np.array([1, 0, 2], dtype=np.int64))
    np.testing.assert_array_equal(arrays["in_retrieval"], np.array([1, 0, 1], dtype=np.float32))
    np.testing.assert_array_equal(
        arrays["content_score"], np.array([0.8, 0.9, 0.0], dtype=np.float32)
    )
    np.testing.assert_array_equal(arrays["in_content"], np.array([1, 1, 0], dtype=np.float32))
    np.testing.assert_array_equal(arrays["movie_rating_count"], np.array([5, 0, 7], dtype=np.int64))
    np.testing.assert_array_equal(
        arrays["movie_rating_mean"], np.array([4.0, 3.5, 3.0], dtype=np.float32)
    )
    expected_genres = np.array(
        [_genres("Action"), [0.0] * len(GENRES), _genres("Drama", "War")], dtype=np.float32
    )
    np.testing.assert_array_equal(arrays["movie_genre_vector"], expected_genres)
    np.testing.assert_array_equal(arrays["user_age"], np.array([31, 31, 31], dtype=np.int64))
    assert arrays["user_gender"].tolist() == ["F", "F", "F"]
    assert arrays["retrieval_score"].dtype == np.float32
    assert arrays["retrieval_rank"].dtype == np.int64
    assert arrays["movie_genre_vector"].shape == (3, len(GENRES))


def test_ranker_inputs_with_missing_user_and_candidate_order_kept() -> None:
    candidates = merge_candidates({"retrieval": [(3, 1.0), (1, 0.5), (2, 0.25)]})
    spec = input_spec(RankerConfig(features=("retrieval_log_rank", "age", "movie_id")))
    arrays = ranker_inputs(spec, 1, {}, {}, list(reversed(candidates)))
    np.testing.assert_array_equal(arrays["movie_id"], np.array([2, 1, 3], dtype=np.int64))
    np.testing.assert_array_equal(arrays["retrieval_rank"], np.array([3, 2, 1], dtype=np.int64))
    np.testing.assert_array_equal(arrays["user_age"], np.array([0, 0, 0], dtype=np.int64))
