"""Helpers to run the deployments' classes in the test process (no Ray): their context, the
replica context `@serve.batch` needs, and TensorFlow's thread pools as they already are."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from deployments.config import ServingContext
from tests.deployments._artifacts import MODE, VARIANT


def serving_context(artifacts_dir: Path, redis_url: str, run_dir: Path) -> ServingContext:
    """The context of a replica serving the tiny tree from the test's Redis."""
    return ServingContext(
        artifacts_dir=artifacts_dir,
        variant=VARIANT,
        mode=MODE,
        run_dir=run_dir,
        redis_url=SecretStr(redis_url),
    )


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
