"""A tiny ranker end to end: build on a slice of ml-100k, export, reload in a new process.

Everything is real except the sizes: a 1-epoch retrieval model trained on the fit part,
candidates merged as the Controller merges them, Feast point-in-time features, a 1-epoch
ranker, the SavedModel + inputs.json, and a fresh Python process that reloads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.content.embeddings import write_embeddings
from models.data import load_dataset, stratified_split
from models.data.schema import MovieLens
from models.features import build_feature_tables, write_sources
from models.ranking.build import build_ranker, fit_and_export, prepare_training_data
from models.ranking.config import CandidateConfig, RankerConfig
from models.ranking.dataset import build_input_rows
from models.ranking.inputs import input_spec
from models.ranking.runtime import load_ranker
from movierec.ranking_inputs import INPUTS_FILE, SAVED_MODEL_DIR, RankerSpec

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
TINY = RankerConfig(
    candidates=CandidateConfig(retrieval_n=30, content_n=10, n_seeds=3, max_ranked=40),
    retrieval={"epochs": 1, "embedding_dim": 8, "id_embedding_dim": 8, "batch_size": 256},
    features=(
        "in_retrieval",
        "in_content",
        "retrieval_log_rank",
        "retrieval_score",
        "content_score",
        "merged_score",
        "log_count",
        "popularity_pct",
        "rating_mean",
        "year",
        "user_log_count",
        "genre_affinity",
        "age",
        "gender",
        "occupation",
    ),
    hidden_dims=(8,),
    epochs=1,
    batch_size=256,
    validation_users=0.2,
)

SCORE_SCRIPT = """
import json, sys
import numpy as np
from models.ranking.runtime import load_ranker
ranker = load_ranker(sys.argv[1], 1, 1)
raw = json.loads(open(sys.argv[2]).read())
arrays = {}
for i in ranker.spec.inputs:
    dtype = object if i.dtype == "string" else i.dtype
    arrays[i.name] = np.asarray(raw[i.name], dtype=dtype)
print(json.dumps(ranker.score(arrays).tolist()))
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    full = load_dataset("ml-100k")
    users = sorted(full.ratings["user_id"].unique())[:60]
    ratings = full.ratings[full.ratings["user_id"].isin(users)]
    dataset = MovieLens("ml-100k", ratings, full.movies, full.users, full.tags)
    train, _ = stratified_split(ratings, 0.75, 42)
    work = tmp_path_factory.mktemp("tiny-ranker")
    write_sources(build_feature_tables(train, dataset.movies, dataset.users), work / "features")
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(dataset.movies), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    content = pd.DataFrame(
        {
            "movie_id": dataset.movies["movie_id"].to_numpy(np.int64),
            "text": dataset.movies["title"].astype(str),
            "embedding": list(vectors),
        }
    )
    write_embeddings(content, work / "content")
    (work / "retrieval").mkdir()  # no served model: the fit-part model uses the overrides
    return {"dataset": dataset, "train": train, "work": work}


def test_build_ranker_writes_a_consistent_ranker(tiny: dict) -> None:
    work: Path = tiny["work"]
    metrics = build_ranker(
        work / "ranking",
        tiny["train"],
        tiny["dataset"],
        work / "retrieval",
        work / "content",
        work / "features",
        TINY,
    )
    assert metrics["rows"] > 0 and metrics["positives"] > 0
    assert {"ranked", "merged", "retrieval"} <= set(metrics["validation"])
    assert metrics["seconds"]["total"] > 0
    ranker = load_ranker(work / "ranking")
    document = json.loads((work / "ranking" / INPUTS_FILE).read_text())
    spec = RankerSpec.from_dict(document)
    assert spec == input_spec(TINY)
    # inputs.json matches the signature: names, dtypes, shapes.
    signature = ranker.signature_inputs
    assert set(signature) == {i.name for i in spec.inputs}
    for entry in document["inputs"]:
        tensor_spec = signature[entry["name"]]
        assert tensor_spec.dtype.name == entry["dtype"]
        assert tensor_spec.shape.as_list() == [None, *entry["shape"]]
        assert entry["source"] in ("user", "movie", "candidate")
    outputs = ranker._fn.structured_outputs
    assert list(outputs) == ["scores"]
    assert ranker.config == TINY


def test_reloaded_in_a_new_process_scores_like_in_process(tiny: dict, tmp_path: Path) -> None:
    from models.ranking.train import predict, train_ranker

    (data,) = prepare_training_data(
        tiny["train"],
        tiny["dataset"],
        tiny["work"] / "retrieval",
        tiny["work"] / "content",
        tiny["work"] / "features",
        TINY,
    )
    spec = input_spec(TINY)
    rows = build_input_rows(spec, data.frame, data.candidates)
    trained = train_ranker(
        rows,
        rows.frame["label"].to_numpy(np.float32),
        TINY,
        occupations=["student", "writer"],
        movie_ids=tiny["dataset"].movies["movie_id"].tolist(),
    )
    from models.ranking.export import export_ranker

    export_ranker(trained.net, TINY, tmp_path / "ranking")
    sample = rows.take(np.arange(min(300, len(rows.frame))))
    in_process = 1.0 / (1.0 + np.exp(-predict(trained.net, sample.arrays)))
    payload = tmp_path / "inputs.json"
    payload.write_text(json.dumps({k: v.tolist() for k, v in sample.arrays.items()}))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", SCORE_SCRIPT, str(tmp_path / "ranking"), str(payload)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reloaded = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_allclose(reloaded, in_process, rtol=1e-5, atol=1e-6)
    assert (tmp_path / "ranking" / SAVED_MODEL_DIR / "saved_model.pb").exists()
    # Same process, reloaded from disk: the same scores too.
    np.testing.assert_allclose(
        load_ranker(tmp_path / "ranking").score(sample.arrays), in_process, rtol=1e-5, atol=1e-6
    )


def test_fit_and_export_reuses_prepared_data(tiny: dict, tmp_path: Path) -> None:
    data = prepare_training_data(
        tiny["train"],
        tiny["dataset"],
        tiny["work"] / "retrieval",
        tiny["work"] / "content",
        tiny["work"] / "features",
        TINY.replace(feature_time="rating_time", folds=2),
    )
    assert [part.fold for part in data] == [0, 1]
    assert data[0].frame["timestamp"].nunique() > 1  # read at label times, not one time
    metrics = fit_and_export(data, tiny["dataset"], tmp_path / "r", TINY.replace(loss="softmax"))
    assert (tmp_path / "r" / INPUTS_FILE).exists()
    assert np.isfinite(metrics["final_loss"])
