"""The baseline without Ray Serve: the Serve app's pipeline in FastAPI/uvicorn worker processes.

    python -m benchmarks.monolith --port 8100 [--workers N] [--config serve_config.yaml] \
        [--args-json '{}'] [--ready-file ready.json]

`--workers 1` serves from this one process. `--workers N` (default: one per core, what a
user deploying the monolith would run) makes this process a supervisor of N worker
processes, each a full pipeline (every model loaded N times) bound to the same port with
SO_REUSEPORT, so the kernel spreads the connections over them; the supervisor stops them
all when it is stopped or when one of them exits, and they die with it. `--ready-file` is
written once every worker accepts connections.

Same code, same artifacts, same Redis, same rules as the Serve app: each stage is its
deployment's own class (`Retrieval.func_or_class(...)` etc.) instantiated in this process,
configured with the `user_config` that `serve_config.yaml` gives its deployment, and called
directly (each class implements its stage's Protocol) instead of through a `DeploymentHandle`;
the flow is the same
`RecommendService` and the routes the same `create_app`. This is what a user would build
without Ray Serve: in each worker, one process, no hops, no proxy.

Notes on running the deployments' classes outside Serve:

* `@serve.batch` (the Ranking stage) asks `serve.get_replica_context()` for the deployment's
  `max_ongoing_requests` when its queue is created, which raises outside a replica. The
  monolith therefore sets a replica context for this process (`_batch_context`) with the
  Ranking deployment's `max_ongoing_requests`; batching then works as in a replica.
* Both TensorFlow models load in this one process; their thread settings (the app's args)
  must agree, since TensorFlow's pools are per process (`configure_threads` refuses a
  conflicting second setting).
* A stage's async `reconfigure` (Features, Content open their Redis clients there) runs
  on uvicorn's event loop, before the server accepts requests.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployments.stages import Stages

logger = logging.getLogger(__name__)


def by_deployment(stages: Stages) -> dict[str, Any]:
    """Deployment name -> stage object (each has the deployment's `reconfigure`)."""
    return {
        "Retrieval": stages.retrieval,
        "Content": stages.content,
        "Features": stages.features,
        "Ranking": stages.ranking,
    }


def _batch_context(ranking: Any, max_ongoing_requests: int) -> None:
    """Gives this process the replica context `@serve.batch` reads (see the module doc)."""
    from ray.serve import context
    from ray.serve._private.common import DeploymentID, ReplicaID
    from ray.serve._private.config import DeploymentConfig
    from ray.serve.schema import ReplicaRank

    context._set_internal_replica_context(
        replica_id=ReplicaID("monolith", DeploymentID("Ranking", "monolith")),
        servable_object=ranking,
        _deployment_config=DeploymentConfig(max_ongoing_requests=max_ongoing_requests),
        rank=ReplicaRank(rank=0, node_rank=0, local_rank=0),
        world_size=1,
    )


def _stage_class(decorated: object) -> Any:
    """The class behind a `@serve.deployment` (what a replica instantiates)."""
    from deployments.app import _deployment

    return _deployment(decorated).func_or_class


def build_stages(args: Any, max_ongoing: Mapping[str, int] | None = None) -> Stages:
    """Instantiates the deployments' classes in this process (loads both SavedModels).

    Args:
        args: The app's `AppArgs`.
        max_ongoing: Deployment name -> `max_ongoing_requests` (Ranking's sizes its batches).
    """
    from deployments.app import _deployment
    from deployments.content import Content
    from deployments.features import Features
    from deployments.ranking import Ranking
    from deployments.retrieval import Retrieval

    context = args.context()
    ranking_deployment = _deployment(Ranking)
    ranking = _stage_class(Ranking)(
        context, args.ranking_intra_op_threads, args.ranking_inter_op_threads
    )
    limit = (max_ongoing or {}).get("Ranking") or ranking_deployment.max_ongoing_requests
    _batch_context(ranking, int(limit))
    return Stages(
        retrieval=_stage_class(Retrieval)(
            context, args.retrieval_intra_op_threads, args.retrieval_inter_op_threads
        ),
        content=_stage_class(Content)(context),
        features=_stage_class(Features)(context),
        ranking=ranking,
    )


async def configure_stages(stages: Stages, user_configs: Mapping[str, Any]) -> None:
    """Applies each deployment's `user_config` (`reconfigure`), on the running event loop."""
    for name, stage in by_deployment(stages).items():
        result = stage.reconfigure(dict(user_configs.get(name) or {}))
        if inspect.isawaitable(result):
            await result


@dataclass
class Pipeline:
    """The in-process pipeline: the service, its stage objects and its metrics registry."""

    service: Any
    stages: Stages
    registry: Any
    metrics: Any


def build_service(stages: Stages, args: Any, registry: Any = None) -> tuple[Any, Any]:
    """The `RecommendService` over the in-process stages, and its `ServingMetrics` (or None).

    Args:
        stages: The stage objects (each implements its `deployments.stages` Protocol).
        args: The app's `AppArgs`.
        registry: A prometheus_client registry for the request metrics (the Serve
            Controller records the same ones through Ray); None records none.
    """
    from deployments.catalog import Catalog
    from deployments.observability.backends import PrometheusClientBackend
    from deployments.observability.serving import ServingMetrics
    from deployments.service import RecommendService, manifest_version

    context = args.context()
    catalog = Catalog.load(context.layout.catalog_dir)
    observer = None
    if registry is not None:
        observer = ServingMetrics(PrometheusClientBackend(registry), catalog)
    service = RecommendService(
        stages,
        catalog,
        manifest_version(context),
        observer=observer,
    )
    return service, observer


async def start_pipeline(
    config_path: Path,
    args_json: Mapping[str, Any],
    wrap: Callable[[Stages], Stages] | None = None,
    with_metrics: bool = True,
) -> Pipeline:
    """Builds, configures and warms the whole in-process pipeline.

    Must run on the event loop that will serve the requests.

    Args:
        config_path: The `serve_config.yaml` whose args and user_configs to use.
        args_json: Overrides of the app's args.
        wrap: Wraps the configured stages before the service uses them (e.g. to record
            the calls); None uses them as they are.
        with_metrics: Record the request metrics in a fresh prometheus_client registry.
    """
    from prometheus_client import CollectorRegistry

    from benchmarks.stack import DEPLOYMENTS, ServeConfig
    from deployments.app import AppArgs
    from deployments.config import ControllerConfig

    config = ServeConfig.load(config_path)
    args = AppArgs.model_validate({**config.args, **args_json})
    user_configs = {name: config.user_config(name) for name in DEPLOYMENTS}
    max_ongoing = {
        name: int(config.deployment(name)["max_ongoing_requests"])
        for name in DEPLOYMENTS
        if "max_ongoing_requests" in config.deployment(name)
    }
    stages = await asyncio.to_thread(build_stages, args, max_ongoing)
    await configure_stages(stages, user_configs)
    registry = CollectorRegistry() if with_metrics else None
    service, metrics = build_service(stages if wrap is None else wrap(stages), args, registry)
    controller = ControllerConfig.model_validate(user_configs["Controller"])
    service.configure(controller)
    if metrics is not None:  # as the Serve Controller's reconfigure does
        metrics.set_coverage_window(controller.monitoring.coverage_window_s)
    return Pipeline(service, stages, registry, metrics)


async def serve_forever(
    port: int,
    config_path: Path,
    args_json: Mapping[str, Any],
    *,
    reuse_port: bool = False,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Starts the pipeline, then uvicorn on 127.0.0.1:`port` (one process, one event loop);
    the request metrics are served on `/metrics`.

    Args:
        port: The TCP port.
        config_path: The serve config.
        args_json: Overrides of the app's args.
        reuse_port: Bind with SO_REUSEPORT, so that several workers share the port (the
            kernel spreads the connections over them).
        on_started: Called once uvicorn accepts connections.
    """
    import uvicorn
    from prometheus_client import make_asgi_app

    from deployments.api import create_app

    pipeline = await start_pipeline(config_path, args_json)
    app = create_app(pipeline.service)
    app.mount("/metrics", make_asgi_app(pipeline.registry))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    announce = asyncio.create_task(_announce(server, on_started))
    try:
        if reuse_port:
            from benchmarks.workers import reuse_port_socket

            await server.serve(sockets=[reuse_port_socket(port)])
        else:
            await server.serve()
    finally:
        announce.cancel()


async def _announce(server: Any, on_started: Callable[[], None] | None) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    if on_started is not None:
        on_started()


def _event_loop_runner() -> asyncio.Runner:
    """uvloop when installed (what uvicorn itself picks), else asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments and serves until terminated; returns the exit status."""
    from benchmarks.stack import SERVE_CONFIG, StackError
    from benchmarks.workers import supervise, worker_command

    parser = argparse.ArgumentParser(prog="python -m benchmarks.monolith", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, default=SERVE_CONFIG)
    parser.add_argument(
        "--args-json", default="{}", help="overrides of the app's args (AppArgs), as JSON"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="full-pipeline worker processes sharing the port (default: one per core)",
    )
    parser.add_argument(
        "--ready-file", type=Path, help="written once every worker accepts connections"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = json.loads(args.args_json)
        if not isinstance(overrides, dict):
            raise ValueError("--args-json must be a JSON object")
        if args.workers < 1:
            raise ValueError("--workers must be >= 1")
        if args.workers > 1 and not args.worker:
            command = worker_command(args.port, args.config, overrides)
            return supervise(command, args.workers, args.ready_file)

        def started() -> None:
            if args.worker:  # tells the supervisor
                sys.stdout.write("serving\n")
                sys.stdout.flush()
            if args.ready_file is not None:
                args.ready_file.write_text(json.dumps({"workers": [os.getpid()]}))

        with _event_loop_runner() as runner:
            runner.run(
                serve_forever(
                    args.port, args.config, overrides, reuse_port=args.worker, on_started=started
                )
            )
    except KeyboardInterrupt:
        return 0
    except (StackError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
