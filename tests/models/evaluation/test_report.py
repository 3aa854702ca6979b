"""`make eval`'s report on a tiny eval artifacts tree: every key, valid JSON, the PNG.

The tree is built by hand from a slice of ml-100k (60 users) with the real code of each
stage at toy sizes: a 1-epoch retrieval model, random content vectors (the encoder is not
the point here), Feast sources of the training split and a 1-epoch ranker. Vector search
runs on the test session's throwaway Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.content.embeddings import write_embeddings
from models.data import load_dataset, stratified_split
from models.data.schema import MovieLens
from models.evaluation.report import (
    QUALITY_JSON,
    QUALITY_PNG,
    SYSTEMS,
    EvalOptions,
    evaluate,
    write_report,
)
from models.features import build_feature_tables, write_sources
from models.ranking.build import build_ranker
from models.ranking.config import CandidateConfig, RankerConfig
from movierec.layout import ArtifactLayout
from movierec.manifest import Manifest, StepRecord

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO_ROOT = Path(__file__).resolve().parents[3]
METRICS = {"precision@10", "recall@10", "ndcg@10", "map@10"}
RETRIEVAL = {"epochs": 1, "embedding_dim": 8, "id_embedding_dim": 8, "batch_size": 256}
RANKER = RankerConfig(
    candidates=CandidateConfig(retrieval_n=30, content_n=10, itemcf_n=0, n_seeds=3, max_ranked=40),
    retrieval=RETRIEVAL,
    hidden_dims=(8,),
    epochs=1,
    validation_users=0.0,
)


def _tiny_tree(root: Path) -> ArtifactLayout:
    from models.retrieval.config import RetrievalConfig
    from models.retrieval.export import export_retrieval
    from models.retrieval.train import train_retrieval

    full = load_dataset("ml-100k")
    users = sorted(full.ratings["user_id"].unique())[:60]
    ratings = full.ratings[full.ratings["user_id"].isin(users)]
    dataset = MovieLens("ml-100k", ratings, full.movies, full.users, full.tags)
    train, test = stratified_split(ratings, 0.75, 42)
    layout = ArtifactLayout.of(root, "ml-100k", "eval")
    layout.splits_dir.mkdir(parents=True)
    train.to_parquet(layout.splits_dir / "train.parquet", index=False)
    test.to_parquet(layout.splits_dir / "test.parquet", index=False)
    layout.catalog_dir.mkdir()
    full.movies.to_parquet(layout.catalog_dir / "movies.parquet", index=False)
    config = RetrievalConfig.from_dict({**RetrievalConfig().to_dict(), **RETRIEVAL})
    export_retrieval(train_retrieval(train, full.movies, full.users, config), layout.retrieval_dir)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(full.movies), 384)).astype(np.float32)
    content = pd.DataFrame(
        {
            "movie_id": full.movies["movie_id"].to_numpy(np.int64),
            "text": full.movies["title"].astype(str),
            "embedding": list(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)),
        }
    )
    write_embeddings(content, layout.content_dir)
    write_sources(build_feature_tables(train, full.movies, full.users), layout.features_dir)
    build_ranker(
        layout.ranking_dir,
        train,
        dataset,
        layout.retrieval_dir,
        layout.content_dir,
        layout.features_dir,
        RANKER,
    )
    manifest = Manifest(variant="ml-100k", mode="eval", data_hash="tiny-data-hash")
    for step in ("splits", "catalog", "retrieval", "content", "features", "ranking"):
        manifest.steps[step] = StepRecord(
            fingerprint=f"{step}-0123456789abcdef", outputs=[step], seconds=1.0
        )
    manifest.save(layout.root)
    return layout


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    _tiny_tree(root)
    return root


def test_report_has_every_key_and_the_plot(
    tree: Path, tmp_path: Path, embedded_redis_url: str
) -> None:
    options = EvalOptions(
        variant="ml-100k",
        artifacts_dir=tree,
        out_dir=tmp_path / "results",
        build_missing=False,
        redis_url=embedded_redis_url,
        temporal=False,
    )
    report = evaluate(options)
    json_path, png_path = write_report(report, options.out_dir)
    assert json_path == tmp_path / "results" / QUALITY_JSON
    loaded = json.loads(json_path.read_text())
    for key in ("dataset", "protocol", "systems", "anchors", "timings", "data_hash"):
        assert key in loaded
    assert loaded["dataset"] == "ml-100k"
    assert loaded["data_hash"] == "tiny-data-hash"
    for key in ("split", "seed", "k", "relevance", "seen_removed"):
        assert key in loaded["protocol"]
    assert loaded["protocol"]["seed"] == 42 and loaded["protocol"]["k"] == 10
    assert loaded["protocol"]["seen_removed"] is True
    assert set(loaded["systems"]) == set(SYSTEMS)
    for name in SYSTEMS:
        assert set(loaded["systems"][name]) == METRICS
        assert all(0.0 <= v <= 1.0 for v in loaded["systems"][name].values())
    assert 0.0 <= loaded["candidate_recall@40"] <= 1.0
    assert loaded["systems"]["retrieval"]["ndcg@10"] > 0.0
    assert loaded["systems"]["content"]["ndcg@10"] >= 0.0
    assert {"BPR", "BiVAE", "SAR", "LightGCN", "popularity"} <= set(loaded["anchors"]["systems"])
    assert set(loaded["timings"]["eval_seconds"]) >= {"retrieval", "content", "ranking"}
    assert set(loaded["served_with_rules"]) == METRICS
    assert set(loaded["ablation"]["without"]) == {"retrieval", "content"}
    assert set(loaded["ablation"]["gain_ndcg@10"]) == {"retrieval", "content"}
    assert loaded["tuning"]["status"].startswith("not run")
    assert png_path.exists() and png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "results" / QUALITY_PNG).stat().st_size > 10_000


def test_cli_reports_errors_without_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "models.evaluation",
            "--artifacts-dir",
            str(tmp_path / "nothing"),
            "--no-build",
            "--out-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2
    # TensorFlow may log on stderr first; the error itself is the last line.
    assert done.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out" / QUALITY_JSON).exists()
