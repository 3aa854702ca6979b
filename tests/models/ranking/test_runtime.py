"""The ranking runtime: the exported ranker checked against `inputs.json`, and a request's
input arrays (missing values become the defaults)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.ranking.runtime import Ranker, load_ranker, query_block, query_inputs
from movierec.payloads import RankQuery
from movierec.ranking_inputs import (
    INPUTS_FILE,
    RankBlock,
    RankerSpec,
    RankerSpecError,
    build_inputs,
    concat_inputs,
)
from tests.deployments._ranker import GENRE_DIM, export_tiny_ranker

NAN = math.nan

SPEC = RankerSpec.from_dict(
    {
        "inputs": [
            {"name": "user_id", "dtype": "int64", "source": "user"},
            {"name": "user_rating_mean", "dtype": "float32", "source": "user", "default": 3.0},
            {"name": "user_gender", "dtype": "string", "source": "user"},
            {"name": "movie_id", "dtype": "int64", "source": "movie"},
            {"name": "movie_rating_mean", "dtype": "float32", "source": "movie", "default": 3.5},
            {"name": "movie_genre_vector", "dtype": "float32", "shape": [2], "source": "movie"},
            {"name": "retrieval_rank", "dtype": "int64", "source": "candidate", "default": -1},
            {"name": "content_rank", "dtype": "int32", "source": "candidate"},
            {"name": "content_score", "dtype": "float32", "source": "candidate"},
            {"name": "in_content", "dtype": "float32", "source": "candidate"},
        ]
    }
)


def _query(candidates: dict[str, np.ndarray]) -> RankQuery:
    return RankQuery(
        user_id=7,
        user={"user_rating_mean": None, "user_gender": "F"},
        movie_ids=np.asarray([10, 20, 30], dtype=np.int64),
        candidates=candidates,
    )


def test_query_inputs_by_hand() -> None:
    """NaN (a source did not propose the movie) and None become the input's default, for
    the int inputs too."""
    query = _query(
        {
            "retrieval_rank": np.asarray([1.0, NAN, 2.0]),
            "content_rank": np.asarray([NAN, 1.0, 2.0]),
            "content_score": np.asarray([NAN, 0.5, 0.25]),
            "in_content": np.asarray([0.0, 1.0, 1.0]),
        }
    )
    movies = {"movie_rating_mean": [4.0, None, NAN], "movie_genre_vector": [[1, 0], None, [0, 1]]}
    got = query_inputs(SPEC, query, movies)
    want: dict[str, Any] = {
        "user_id": np.asarray([7, 7, 7], dtype=np.int64),
        "user_rating_mean": np.asarray([3.0, 3.0, 3.0], dtype=np.float32),
        "user_gender": np.asarray(["F", "F", "F"], dtype=object),
        "movie_id": np.asarray([10, 20, 30], dtype=np.int64),
        "movie_rating_mean": np.asarray([4.0, 3.5, 3.5], dtype=np.float32),
        "movie_genre_vector": np.asarray([[1, 0], [0, 0], [0, 1]], dtype=np.float32),
        "retrieval_rank": np.asarray([1, -1, 2], dtype=np.int64),
        "content_rank": np.asarray([0, 1, 2], dtype=np.int32),
        "content_score": np.asarray([0.0, 0.5, 0.25], dtype=np.float32),
        "in_content": np.asarray([0.0, 1.0, 1.0], dtype=np.float32),
    }
    assert list(got) == list(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_query_inputs_missing_columns_and_float32_nan() -> None:
    """An absent column is all defaults; a float32 NaN is missing like a float64 one."""
    query = _query({"retrieval_rank": np.asarray([NAN, 3.0, NAN], dtype=np.float32)})
    got = query_inputs(SPEC, query, {})
    np.testing.assert_array_equal(got["retrieval_rank"], [-1, 3, -1])
    np.testing.assert_array_equal(got["content_rank"], [0, 0, 0])
    np.testing.assert_array_equal(got["movie_rating_mean"], [3.5, 3.5, 3.5])
    np.testing.assert_array_equal(got["movie_genre_vector"], np.zeros((3, 2)))
    block = query_block(query, {})
    assert block.user_id == 7 and len(block) == 3
    with pytest.raises(RankerSpecError, match="2 values for 3 candidates"):
        query_inputs(SPEC, _query({"in_content": np.asarray([1.0, 0.0])}), {})


@pytest.fixture(scope="module")
def ranking_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_ranker(tmp_path_factory.mktemp("ranking") / "ranking")


def _block(n: int) -> RankBlock:
    rng = np.random.default_rng(n)
    return RankBlock(
        user_id=1,
        user={
            "user_genre_affinity": rng.dirichlet(np.ones(GENRE_DIM)).tolist(),
            "user_gender": "F",
        },
        movie_ids=list(range(1, n + 1)),
        movies={
            "movie_genre_vector": (rng.random((n, GENRE_DIM)) < 0.2).astype(float).tolist(),
            "movie_rating_count": [None] * n,
        },
        candidates={"retrieval_score": rng.normal(size=n).tolist()},
    )


@pytest.mark.slow
def test_scores_follow_the_contract_and_batching_is_exact(ranking_dir: Path) -> None:
    from models.tensorflow_env import tf

    threads = tf.config.threading  # the pools are set once per process: ask for those set
    ranker = load_ranker(
        ranking_dir,
        threads.get_intra_op_parallelism_threads(),
        threads.get_inter_op_parallelism_threads(),
    )
    assert ranker.metadata == {}  # no ranker.json: the default configuration
    assert ranker.config.to_dict() == type(ranker.config)().to_dict()
    blocks = [_block(n) for n in (5, 1, 7)]
    alone = [ranker.score(build_inputs(ranker.spec, b)) for b in blocks]
    assert [a.shape for a in alone] == [(5,), (1,), (7,)]
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in alone)
    together = concat_inputs([build_inputs(ranker.spec, b) for b in blocks])
    np.testing.assert_allclose(ranker.score(together), np.concatenate(alone), rtol=1e-5, atol=1e-6)
    # Offline scoring in chunks answers the same.
    np.testing.assert_allclose(
        ranker.score(together, batch_size=4), np.concatenate(alone), rtol=1e-5, atol=1e-6
    )
    assert ranker.warm_up().shape == (2,)
    assert ranker.score({}).shape == (0,)


@pytest.mark.slow
def test_spec_and_signature_must_agree(ranking_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "ranking"
    shutil.copytree(ranking_dir, broken)
    spec = json.loads((broken / INPUTS_FILE).read_text())
    spec["inputs"] = spec["inputs"][1:]
    (broken / INPUTS_FILE).write_text(json.dumps(spec))
    with pytest.raises(RankerSpecError, match=r"not in inputs\.json"):
        Ranker(broken)
    spec = json.loads((ranking_dir / INPUTS_FILE).read_text())
    spec["inputs"][0]["dtype"] = "float64"
    (broken / INPUTS_FILE).write_text(json.dumps(spec))
    with pytest.raises(RankerSpecError, match="float64"):
        Ranker(broken)
    spec["inputs"][0]["dtype"] = "float32"
    spec["signature"] = "other"
    (broken / INPUTS_FILE).write_text(json.dumps(spec))
    with pytest.raises(RankerSpecError, match="no signature 'other'"):
        Ranker(broken)
