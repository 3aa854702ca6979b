"""The Ranking deployment's model loader against a real exported SavedModel (no Ray)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deployments.ranking import BatchStats, LoadedRanker
from movierec.ranking_inputs import INPUTS_FILE, RankBlock, RankerSpecError, build_inputs
from tests.deployments._ranker import GENRE_DIM, export_tiny_ranker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tf() -> Any:
    from models.tensorflow_env import tf

    return tf


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


def test_scores_follow_the_contract_and_batching_is_exact(ranking_dir: Path, tf: Any) -> None:
    ranker = LoadedRanker(ranking_dir, tf)
    blocks = [_block(n) for n in (5, 1, 7)]
    alone = [ranker.score(build_inputs(ranker.spec, b)) for b in blocks]
    assert [a.shape for a in alone] == [(5,), (1,), (7,)]
    assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in alone)
    inputs = [build_inputs(ranker.spec, b) for b in blocks]
    together = ranker.score({k: np.concatenate([i[k] for i in inputs]) for k in inputs[0]})
    np.testing.assert_allclose(together, np.concatenate(alone), rtol=1e-5, atol=1e-6)


def test_spec_and_signature_must_agree(ranking_dir: Path, tmp_path: Path, tf: Any) -> None:
    broken = tmp_path / "ranking"
    shutil.copytree(ranking_dir, broken)
    spec = json.loads((broken / INPUTS_FILE).read_text())
    spec["inputs"] = spec["inputs"][1:]
    (broken / INPUTS_FILE).write_text(json.dumps(spec))
    with pytest.raises(RankerSpecError, match=r"not in inputs\.json"):
        LoadedRanker(broken, tf)
    spec = json.loads((ranking_dir / INPUTS_FILE).read_text())
    spec["inputs"][0]["dtype"] = "float64"
    (broken / INPUTS_FILE).write_text(json.dumps(spec))
    with pytest.raises(RankerSpecError, match="float64"):
        LoadedRanker(broken, tf)


def test_batch_stats() -> None:
    stats = BatchStats()
    assert stats.snapshot()["mean_batch_size"] == 0.0
    stats.record(1, 100, 0.001)
    stats.record(3, 250, 0.003)
    snap = stats.snapshot()
    assert snap["calls"] == 2 and snap["mean_batch_size"] == 2.0 and snap["max_batch_size"] == 3
    assert snap["mean_rows_per_call"] == 175.0 and abs(snap["mean_model_ms"] - 2.0) < 1e-9
    stats.reset()
    assert stats.snapshot()["calls"] == 0
