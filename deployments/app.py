"""The application builder: one Ray Serve model-composition app from one artifacts tree.

`serve_config.yaml` points at it (`import_path: deployments.app:build_app`) and passes
`AppArgs` as the application's `args`; Serve validates them against the annotation::

    serve run serve_config.yaml        # or: serve deploy serve_config.yaml
    serve run deployments.app:build_app artifacts_dir=/path/to/artifacts mode=full

The deployments' options (resources, autoscaling, limits, health checks) and `user_config`
live in `serve_config.yaml` only; the classes declare none.

No `from __future__ import annotations` here: Serve reads `build_app`'s annotation at runtime
to validate the `args` into an `AppArgs`.
"""

import os
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from ray.serve import Application, Deployment

from deployments.config import ServingContext
from deployments.content import Content
from deployments.controller import Controller
from deployments.events import Events
from deployments.features import Features
from deployments.ranking import Ranking
from deployments.retrieval import Retrieval
from movierec.layout import Mode
from movierec.settings import get_settings

MODE_ENV = "MOVIEREC_MODE"
"""Environment variable naming the artifacts mode to serve when `args.mode` is null."""


class AppArgs(BaseModel):
    """Arguments of `build_app` (the `args` of the application in `serve_config.yaml`).

    Attributes:
        artifacts_dir: Root of the artifacts trees (default: `MOVIEREC_ARTIFACTS_DIR`).
        variant: MovieLens variant to serve (default: `MOVIEREC_DATASET`).
        mode: "eval" or "full" artifacts tree (default: `MOVIEREC_MODE`, else "eval"; `make`
            passes its MODE).
        redis_url: Explicit Redis URL. Leave it unset: Serve logs the application's args
            (and `serve config` shows them), so a password here leaks. Unset, replicas use
            `REDIS_URL` from their environment (that of `ray start`), else the embedded Redis
            of `run_dir`.
        run_dir: Run dir of the embedded Redis (default: `MOVIEREC_RUN_DIR`).
        storage_uri: Where builds are served from: "" the local tree, `s3://bucket/prefix`
            the object store (default: `MOVIEREC_STORAGE_URI`; the endpoint comes from
            `AWS_ENDPOINT_URL`, the credentials from each node's AWS chain).
        retrieval_intra_op_threads: TensorFlow intra-op threads of a Retrieval replica.
        retrieval_inter_op_threads: TensorFlow inter-op threads of a Retrieval replica.
        ranking_intra_op_threads: TensorFlow intra-op threads of a Ranking replica.
        ranking_inter_op_threads: TensorFlow inter-op threads of a Ranking replica.
    """

    model_config = ConfigDict(extra="forbid")

    artifacts_dir: Path | None = None
    variant: str | None = None
    mode: Mode | None = None
    redis_url: SecretStr | None = None
    run_dir: Path | None = None
    storage_uri: str | None = None
    retrieval_intra_op_threads: int = Field(default=1, ge=1, le=64)
    retrieval_inter_op_threads: int = Field(default=1, ge=1, le=64)
    ranking_intra_op_threads: int = Field(default=1, ge=1, le=64)
    ranking_inter_op_threads: int = Field(default=1, ge=1, le=64)

    def context(self) -> ServingContext:
        """Resolves the defaults from the settings of the building process.

        Paths are made absolute here, so replicas (other processes, possibly another
        working directory) use exactly the same ones.
        """
        settings = get_settings()
        return ServingContext.model_validate(
            {
                "artifacts_dir": (self.artifacts_dir or settings.artifacts_dir)
                .expanduser()
                .resolve(),
                "variant": self.variant or settings.dataset,
                "mode": self.mode or os.environ.get(MODE_ENV) or "eval",  # validated here
                "run_dir": (self.run_dir or settings.run_dir).expanduser().resolve(),
                "redis_url": self.redis_url,
                "storage_uri": settings.storage_uri
                if self.storage_uri is None
                else self.storage_uri,
                "s3_endpoint_url": settings.s3_endpoint_url,
                "storage_cache_dir": settings.storage_cache_dir,
            }
        )


def _deployment(decorated: object) -> Deployment:
    """A `@serve.deployment` class as what it is at runtime (type checkers see the class)."""
    if not isinstance(decorated, Deployment):
        raise TypeError(f"{decorated!r} is not a Serve deployment")
    return decorated


def build_app(args: AppArgs) -> Application:
    """Binds the six deployments into one application whose ingress is the Controller.

    Args:
        args: The application's `args`; Serve validates them into `AppArgs` from this
            annotation (a plain mapping is validated here too).
    """
    if not isinstance(args, AppArgs):
        args = AppArgs.model_validate(cast(dict[str, Any], args))
    context = args.context()
    retrieval = _deployment(Retrieval).bind(
        context, args.retrieval_intra_op_threads, args.retrieval_inter_op_threads
    )
    content = _deployment(Content).bind(context)
    features = _deployment(Features).bind(context)
    ranking = _deployment(Ranking).bind(
        context, args.ranking_intra_op_threads, args.ranking_inter_op_threads
    )
    events = _deployment(Events).bind(context)
    return _deployment(Controller).bind(retrieval, content, features, ranking, context, events)
