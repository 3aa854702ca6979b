"""A stage deployment's undecorated class, in process, on tiny real artifacts in a real Redis.

`Features.func_or_class`, `Content.func_or_class`, ... are the classes the single-process
baseline uses; here they run on the test's event loop, no Ray involved. Each module gets its
own embedded Redis (other tests FLUSHALL the session's), loaded as `_serve.py` loads it.
The model stages also need TensorFlow's thread pools as this process has them (`tf_threads`)
and, for `@serve.batch`, a replica context (`replica_context`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from deployments.config import ServingContext
from movierec.redis_server import embedded_redis
from tests.deployments._artifacts import TinyArtifacts, build_tiny_artifacts


@dataclass
class TinyStage:
    """Where a stage runs: its context, the Redis URL and the artifacts."""

    context: ServingContext
    redis_url: str
    artifacts: TinyArtifacts


@contextlib.contextmanager
def tiny_stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStage]:
    """Builds (or copies) the tiny artifacts into a fresh Redis; yields the stage context."""
    run_dir = tmp_path_factory.mktemp("stage-run")
    with embedded_redis(run_dir) as redis_url:
        artifacts = build_tiny_artifacts(tmp_path_factory.mktemp("stage") / "artifacts", redis_url)
        context = ServingContext(
            artifacts_dir=artifacts.artifacts_dir,
            variant=artifacts.layout.variant,
            mode=artifacts.layout.mode,
            run_dir=run_dir,
            redis_url=SecretStr(redis_url),
        )
        yield TinyStage(context, redis_url, artifacts)


def liked_and_seen(artifacts: TinyArtifacts, user_id: int) -> tuple[list[int], set[int]]:
    """The user's liked movies (rated >= 4, best rated then most recent first, smaller id on
    ties) and seen movies, from the training split the features were built from."""
    train = artifacts.train[artifacts.train["user_id"] == user_id]
    liked = train[train["rating"] >= 4.0].sort_values(
        ["rating", "timestamp", "movie_id"], ascending=[False, False, True], kind="mergesort"
    )
    return [int(m) for m in liked["movie_id"]], {int(m) for m in train["movie_id"]}


def tf_threads() -> tuple[int, int]:
    """TensorFlow's (intra, inter) op pools in this process: a replica built here must ask
    for these (they are set once per process, e.g. by a training that ran before)."""
    from models.tensorflow_env import tf

    return (
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


@contextlib.contextmanager
def replica_context(servable: Any, max_ongoing_requests: int = 32) -> Iterator[None]:
    """The replica context `@serve.batch` reads (as `benchmarks.monolith` sets it)."""
    from ray.serve import context
    from ray.serve._private.common import DeploymentID, ReplicaID
    from ray.serve._private.config import DeploymentConfig
    from ray.serve.schema import ReplicaRank

    previous = context._INTERNAL_REPLICA_CONTEXT
    context._set_internal_replica_context(
        replica_id=ReplicaID("test", DeploymentID("Ranking", "test")),
        servable_object=servable,
        _deployment_config=DeploymentConfig(max_ongoing_requests=max_ongoing_requests),
        rank=ReplicaRank(rank=0, node_rank=0, local_rank=0),
        world_size=1,
    )
    try:
        yield
    finally:
        context._INTERNAL_REPLICA_CONTEXT = previous
