"""The ranker contract: `inputs.json` parsing and the tensors built from candidate blocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from movierec.ranking_inputs import (
    RankBlock,
    RankerSpec,
    RankerSpecError,
    build_inputs,
    candidate_columns,
    concat_inputs,
    split_scores,
)

SPEC: dict[str, Any] = {
    "inputs": [
        {"name": "affinity", "dtype": "float32", "shape": [3], "source": "user",
         "feature": "user_genre_affinity"},
        {"name": "uid", "dtype": "int64", "shape": [], "source": "user", "feature": "user_id"},
        {"name": "gender", "dtype": "string", "shape": [], "source": "user",
         "feature": "user_gender"},
        {"name": "genres", "dtype": "float32", "shape": [None, 3], "source": "movie",
         "feature": "movie_genre_vector", "default": 0.5},
        {"name": "mean", "dtype": "float32", "shape": [None], "source": "movie",
         "feature": "movie_rating_mean", "default": 3.5},
        {"name": "mid", "dtype": "int64", "shape": [], "source": "movie", "feature": "movie_id"},
        {"name": "retrieval_score", "dtype": "float32", "shape": [], "source": "candidate"},
        {"name": "in_content", "dtype": "float32", "shape": [], "source": "candidate"},
    ]
}  # fmt: skip


def _block(n: int = 3) -> RankBlock:
    return RankBlock(
        user_id=7,
        user={"user_genre_affinity": [0.2, 0.3, 0.5], "user_gender": None},
        movie_ids=list(range(10, 10 + n)),
        movies={
            "movie_genre_vector": [[1.0, 0.0, 0.0], None, [0.0, 1.0, 1.0]][:n],
            "movie_rating_mean": [4.0, None, float("nan")][:n],
        },
        candidates=candidate_columns(
            [{"retrieval": 1.5}, {"content": 0.9}, {"retrieval": 0.5, "content": 0.8}][:n],
            [{"retrieval": 1}, {"content": 1}, {"retrieval": 2, "content": 2}][:n],
            [0.03, 0.02, 0.01][:n],
            ("retrieval", "content", "popular"),
        ),
    )


def test_parse_normalizes_shapes_and_defaults() -> None:
    spec = RankerSpec.from_dict(SPEC)
    by_name = {i.name: i for i in spec.inputs}
    assert by_name["genres"].shape == (3,)
    assert by_name["mean"].shape == ()
    assert by_name["gender"].default == ""
    assert by_name["retrieval_score"].feature == "retrieval_score"
    assert spec.signature == "serving_default" and spec.output == "scores"
    assert spec.movie_features == ["movie_genre_vector", "movie_rating_mean"]
    assert spec.user_features == ["user_genre_affinity", "user_gender"]
    assert RankerSpec.from_dict(SPEC["inputs"]).inputs == spec.inputs  # a bare list works


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "x", "dtype": "float16", "source": "user"}, "unknown dtype"),
        ({"name": "x", "source": "item"}, "source must be one of"),
        ({"name": "x", "source": "user", "shape": [2, 3]}, "shape must be"),
        ({"name": "x", "source": "user", "shape": [0]}, "shape must be"),
        ({"source": "user"}, "needs a name"),
    ],
)
def test_parse_rejects_bad_inputs(entry: dict[str, object], message: str) -> None:
    with pytest.raises(RankerSpecError, match=message):
        RankerSpec.from_dict({"inputs": [entry]})


def test_parse_rejects_empty_and_duplicate_specs(tmp_path: Path) -> None:
    with pytest.raises(RankerSpecError, match="at least one"):
        RankerSpec.from_dict({"inputs": []})
    twice = {"name": "x", "source": "user"}
    with pytest.raises(RankerSpecError, match="duplicate"):
        RankerSpec.from_dict({"inputs": [twice, twice]})
    path = tmp_path / "inputs.json"
    path.write_text("{not json")
    with pytest.raises(RankerSpecError, match="not valid JSON"):
        RankerSpec.load(path)
    path.write_text(json.dumps(SPEC))
    assert len(RankerSpec.load(path).inputs) == len(SPEC["inputs"])


def test_build_inputs_shapes_dtypes_and_defaults() -> None:
    arrays = build_inputs(RankerSpec.from_dict(SPEC), _block())
    assert arrays["affinity"].shape == (3, 3) and arrays["affinity"].dtype == np.float32
    np.testing.assert_allclose(arrays["affinity"][2], [0.2, 0.3, 0.5])
    assert arrays["uid"].tolist() == [7, 7, 7] and arrays["uid"].dtype == np.int64
    assert arrays["gender"].tolist() == ["", "", ""]
    np.testing.assert_allclose(arrays["genres"][1], [0.5, 0.5, 0.5])  # default broadcast
    np.testing.assert_allclose(arrays["mean"], [4.0, 3.5, 3.5])  # None and NaN -> default
    assert arrays["mid"].tolist() == [10, 11, 12]
    np.testing.assert_allclose(arrays["retrieval_score"], [1.5, 0.0, 0.5])
    np.testing.assert_allclose(arrays["in_content"], [0.0, 1.0, 1.0])


def test_build_inputs_fast_path_and_wrong_lengths() -> None:
    spec = RankerSpec.from_dict(SPEC)
    block = _block()
    block.movies = {"movie_genre_vector": [[1.0, 0.0, 0.0]] * 3, "movie_rating_mean": [1, 2, 3]}
    arrays = build_inputs(spec, block)
    assert arrays["genres"].shape == (3, 3)
    block.movies = {"movie_genre_vector": [[1.0, 0.0]] * 3}
    with pytest.raises(RankerSpecError, match="expected 3"):
        build_inputs(spec, block)
    block.movies = {"movie_rating_mean": [1.0]}
    with pytest.raises(RankerSpecError, match="1 values for 3 candidates"):
        build_inputs(spec, block)


def test_candidate_columns() -> None:
    columns = candidate_columns(
        [{"retrieval": 2.0}, {"content": 0.5}],
        [{"retrieval": 1}, {"content": 3}],
        [0.1, 0.2],
        ("retrieval", "content"),
    )
    assert columns["merged_score"] == [0.1, 0.2]
    assert columns["retrieval_score"] == [2.0, None]
    assert columns["content_rank"] == [None, 3]
    assert columns["in_retrieval"] == [1.0, 0.0]


def test_concat_and_split_round_trip() -> None:
    spec = RankerSpec.from_dict(SPEC)
    blocks = [build_inputs(spec, _block(n)) for n in (3, 1, 2)]
    merged = concat_inputs(blocks)
    assert merged["affinity"].shape == (6, 3) and merged["uid"].shape == (6,)
    parts = split_scores(np.arange(6, dtype=np.float64), [3, 1, 2])
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3], [4, 5]]
    assert all(p.dtype == np.float32 for p in parts)


def test_float_array_columns_fill_nan_with_the_default_like_lists() -> None:
    spec = RankerSpec.from_dict(
        {
            "inputs": [
                {"name": "retrieval_rank", "dtype": "int64", "shape": [], "source": "candidate"},
                {"name": "content_score", "dtype": "float32", "shape": [],
                 "source": "candidate", "default": -1.0},
            ]
        }
    )  # fmt: skip
    lists = {"retrieval_rank": [2, None, 1], "content_score": [None, 0.5, 0.25]}
    arrays = {  # what the Controller sends: float64, NaN where missing
        "retrieval_rank": np.array([2.0, np.nan, 1.0]),
        "content_score": np.array([np.nan, 0.5, 0.25]),
    }
    block = RankBlock(user_id=1, user={}, movie_ids=[1, 2, 3], movies={}, candidates=lists)
    from_lists = build_inputs(spec, block)
    block.candidates = arrays
    from_arrays = build_inputs(spec, block)
    assert from_arrays["retrieval_rank"].tolist() == [2, 0, 1]  # the default 0
    assert from_arrays["retrieval_rank"].dtype == np.int64
    np.testing.assert_array_equal(from_arrays["content_score"], [-1.0, 0.5, 0.25])
    for name in from_lists:
        np.testing.assert_array_equal(from_arrays[name], from_lists[name])
        assert from_arrays[name].dtype == from_lists[name].dtype
