"""The Ranking deployment's class in process (no Ray): the tiny real ranker, the movie
features read from the real (embedded) Redis through its near cache, batching."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from deployments.common import StageUnavailableError
from deployments.ranking import BatchStats, Ranking
from models.ranking.runtime import query_inputs
from movierec.payloads import RankQuery
from tests.deployments._artifacts import TinyArtifacts
from tests.deployments._inprocess import TinyStage, replica_context, tf_threads, tiny_stage

RankingClass = Ranking.func_or_class
NAN = math.nan


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


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStage]:
    with tiny_stage(tmp_path_factory) as built:
        yield built


@pytest.fixture(scope="module")
def tiny(built: TinyStage) -> TinyArtifacts:
    return built.artifacts


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One loop for the module: `@serve.batch` keeps one queue per decorated method (per
    class, not per instance), bound to the loop of its first call."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def stage(built: TinyStage, loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    ranking = RankingClass(built.context, *tf_threads())
    with replica_context(ranking):
        yield ranking
        if ranking._warm_up is not None:
            loop.run_until_complete(ranking._warm_up)


def _popular(tiny: TinyArtifacts) -> list[int]:
    frame = pd.read_parquet(tiny.layout.catalog_dir / "popularity.parquet")
    return frame.sort_values("rank")["movie_id"].astype(int).tolist()


def _query(user_id: int, movie_ids: list[int]) -> RankQuery:
    n = len(movie_ids)
    rng = np.random.default_rng(user_id)
    retrieval = np.sort(rng.normal(size=n))[::-1]
    retrieval[1::3] = NAN  # not proposed by retrieval: the inputs' defaults
    proposed = ~np.isnan(retrieval)
    return RankQuery(
        user_id=user_id,
        user={"user_age": 30, "user_gender": "F", "user_occupation": "student"},
        movie_ids=np.asarray(movie_ids, dtype=np.int64),
        candidates={
            "retrieval_score": retrieval,
            "retrieval_rank": np.where(proposed, np.cumsum(proposed), NAN),
            "in_retrieval": proposed.astype(np.float64),
            "content_score": np.where(proposed, NAN, 0.5),
            "content_rank": np.where(proposed, NAN, np.cumsum(~proposed)),
            "in_content": (~proposed).astype(np.float64),
            "merged_score": np.linspace(0.03, 0.01, n),
        },
    )


def _movie_columns(tiny: TinyArtifacts, url: str, ids: list[int]) -> dict[str, list[Any]]:
    """The candidates' movie features read straight from Feast (what the stage must use)."""
    from models.features.runtime import OnlineFeatures

    reader = OnlineFeatures.open(
        url, tiny.layout.features_dir / "registry.db", tiny.layout.feast_project
    )
    return reader.get_movie_features(ids)


@pytest.mark.integration
def test_rank_reads_the_movie_features_and_scores_like_the_runtime(
    built: TinyStage, stage: Any, loop: asyncio.AbstractEventLoop
) -> None:
    tiny = built.artifacts
    popular = _popular(tiny)
    loop.run_until_complete(stage.reconfigure({"movie_cache": {"prefetch": 30}}))
    loop.run_until_complete(stage._warm_up)  # the store opened, the 30 most popular cached
    health = loop.run_until_complete(stage.health())
    assert health["status"] == "ok" and health["detail"]["feature_store"] == "open"
    assert health["detail"]["cached_movies"] == 30

    ids = popular[20:45]  # 10 cached, 15 read
    query = _query(1, ids)
    scores = loop.run_until_complete(stage.rank(query))
    assert scores.shape == (25,) and scores.dtype == np.float32

    columns = _movie_columns(tiny, built.redis_url, ids)
    assert sum(v is not None for v in columns["movie_rating_mean"]) >= 20  # real features
    ranker = stage._model.current
    want = ranker.score(query_inputs(ranker.spec, query, columns))
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)
    without = ranker.score(query_inputs(ranker.spec, query, {}))
    assert not np.allclose(scores, without)  # the movie features count

    detail = loop.run_until_complete(stage.health())["detail"]
    assert (detail["cached_movies"], detail["cache_hits"], detail["cache_misses"]) == (45, 10, 45)
    assert len(loop.run_until_complete(stage.rank(_query(1, [])))) == 0


@pytest.mark.integration
def test_a_batch_reads_its_missing_features_once(
    tiny: TinyArtifacts, stage: Any, loop: asyncio.AbstractEventLoop
) -> None:
    loop.run_until_complete(
        stage.reconfigure({"batch_wait_timeout_s": 0.2, "movie_cache": {"ttl_s": 0, "prefetch": 0}})
    )
    loop.run_until_complete(stage._warm_up)
    reader = loop.run_until_complete(stage._store.get())
    reads: list[list[int]] = []
    read = reader.get_movie_features_async

    async def counted(ids: list[int]) -> dict[str, list[Any]]:
        reads.append(list(ids))
        return await read(ids)

    reader.get_movie_features_async = counted
    popular = _popular(tiny)
    queries = [_query(u, popular[5 * u : 5 * u + 10]) for u in (1, 2, 3)]  # overlapping ids

    async def together() -> list[np.ndarray]:
        return list(await asyncio.gather(*(stage.rank(q) for q in queries)))

    batched = loop.run_until_complete(together())
    assert stage.stats()["calls"] == 1 and stage.stats()["max_batch_size"] == 3
    assert reads == [sorted(set(popular[5:25]))]  # one read: the union
    loop.run_until_complete(stage.reconfigure({"batch_wait_timeout_s": 0.0}))
    for query, scores in zip(queries, batched, strict=True):
        alone = loop.run_until_complete(stage.rank(query))
        np.testing.assert_allclose(scores, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.integration
def test_a_failed_feature_read_makes_the_stage_unavailable_then_reconnects(
    tiny: TinyArtifacts, stage: Any, loop: asyncio.AbstractEventLoop
) -> None:
    loop.run_until_complete(stage.reconfigure({"movie_cache": {"ttl_s": 0, "prefetch": 0}}))
    loop.run_until_complete(stage._warm_up)
    query = _query(4, _popular(tiny)[:8])
    reader = loop.run_until_complete(stage._store.get())

    async def lost(ids: list[int]) -> dict[str, list[Any]]:
        raise redis.exceptions.ConnectionError("Connection refused")

    reader.get_movie_features_async = lost
    with pytest.raises(StageUnavailableError, match="lost its dependency"):
        loop.run_until_complete(stage.rank(query))
    assert stage._store.current is None  # dropped: the next call, or health check, reconnects
    loop.run_until_complete(stage.check_health())
    assert stage._store.current is not None and stage._store.reconnects == 1
    assert loop.run_until_complete(stage.rank(query)).shape == (8,)

    async def broken(ids: list[int]) -> dict[str, list[Any]]:
        raise RuntimeError("feast went wrong")

    loop.run_until_complete(stage._store.get()).get_movie_features_async = broken
    with pytest.raises(StageUnavailableError, match="movie features unavailable"):
        loop.run_until_complete(stage.rank(query))


@pytest.mark.integration
def test_without_a_ranker_the_stage_is_unavailable(
    built: TinyStage, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    context = built.context.model_copy(update={"artifacts_dir": tmp_path / "no-artifacts"})
    stage = RankingClass(context, *tf_threads())
    with replica_context(stage):
        loop.run_until_complete(stage.reconfigure({}))
        loop.run_until_complete(stage._warm_up)  # no registry: the prefetch stops quietly
        with pytest.raises(StageUnavailableError, match="ranker unavailable"):
            loop.run_until_complete(stage.rank(_query(1, [1, 2])))
        health = loop.run_until_complete(stage.health())
        assert health["status"] == "unavailable"
        assert health["detail"]["error"].startswith("FileNotFoundError")
        loop.run_until_complete(stage.check_health())
