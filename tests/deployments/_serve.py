"""The whole app on real Ray Serve, real Redis and tiny real artifacts, for end-to-end tests.

Deployed the way `serve run serve_config.yaml` deploys it (the declarative config path, so a
changed `user_config` is a lightweight update): the real `serve_config.yaml`, with only the
args (artifacts, run dir) and the HTTP port replaced. The app finds Redis like in production:
through the embedded Redis's state file in its run dir. Ray runs in-process (`ray.init` of a
local instance, or a two-node `ray.cluster_utils.Cluster` on this machine for the node-loss
test), never on the machine's shared cluster, kept off the network by the loopback guard
(`movierec.netguard`) where it can be applied.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
import yaml

from benchmarks.stack import RELAXED_TIMEOUTS, deploy_raw, free_port, serve_mode_env
from movierec.netguard import guarding_this_process
from movierec.redis_server import embedded_redis, save_snapshot
from movierec.redis_server import start as start_redis
from movierec.redis_server import stop as stop_redis
from tests.deployments._artifacts import TinyArtifacts, build_tiny_artifacts

ROOT = Path(__file__).resolve().parents[2]
APP = "movierec"


@dataclass
class Served:
    """The running app."""

    base_url: str
    config: dict[str, Any]
    artifacts: TinyArtifacts
    http: httpx.Client
    run_dir: Path
    cluster: Any = None
    """The `ray.cluster_utils.Cluster` when the app runs on two nodes (`worker_node`)."""

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)


def deploy(raw: dict[str, Any], timeout: float = 300.0) -> None:
    """Submits the config like `serve run`/`serve deploy` do; waits until RUNNING."""
    deploy_raw(raw, timeout)


def with_user_config(base: dict[str, Any], deployment: str, **changes: Any) -> dict[str, Any]:
    """A copy of the config with `changes` merged into one deployment's user_config."""
    raw = copy.deepcopy(base)
    for entry in raw["applications"][0]["deployments"]:
        if entry["name"] == deployment:
            _merge(entry["user_config"], changes)
    return raw


def with_options(base: dict[str, Any], deployment: str, **options: Any) -> dict[str, Any]:
    """A copy of the config with `options` (e.g. max_queued_requests) merged into one
    deployment's entry."""
    raw = copy.deepcopy(base)
    for entry in raw["applications"][0]["deployments"]:
        if entry["name"] == deployment:
            _merge(entry, options)
    return raw


def _merge(target: dict[str, Any], changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, dict):
            _merge(target.setdefault(key, {}), value)
        else:
            target[key] = value


@contextlib.contextmanager
def _redis(run_dir: Path, persist: bool) -> Iterator[str]:
    if not persist:
        with embedded_redis(run_dir) as url:
            yield url
        return
    try:
        yield start_redis(run_dir, 0, persist=True)
    finally:
        stop_redis(run_dir)


@contextlib.contextmanager
def serve_tiny_app(
    tmp_path_factory: pytest.TempPathFactory,
    *,
    timeouts: dict[str, float] | None = None,
    env_vars: dict[str, str] | None = None,
    persist_redis: bool = False,
    serve_mode: bool = False,
    worker_node: dict[str, Any] | None = None,
    **ray_init: Any,
) -> Iterator[Served]:
    """Builds tiny artifacts, starts Ray in-process and deploys the app; yields it running.

    Args:
        tmp_path_factory: pytest's, for the run dir and the artifacts.
        timeouts: The Controller's `timeouts` (None: `RELAXED_TIMEOUTS`; {}: those of
            serve_config.yaml, the production budget).
        env_vars: Added to the replicas' environment (the application's runtime_env).
        persist_redis: Redis with RDB snapshots, snapshotted after the load (as
            `models.pipeline` does), so a test can kill and restart it with its data.
        serve_mode: Ray in the Serve mode of `make run` (HAProxy, gRPC handles:
            `benchmarks.stack.serve_mode_env`) instead of Serve's default proxy and handles
            (`MOVIEREC_SERVE_DEFAULT_MODE=1`; the workers at nice 0 either way).
        worker_node: Run on two Ray nodes on this machine: a head with 2 CPUs (the app's
            whole replica set fits on it) and a worker node with these `add_node`
            arguments (e.g. `num_cpus`); Serve spreads the replicas over both.
        ray_init: Extra `ray.init` arguments (e.g. the metrics export port).
    """
    from ray import serve

    run_dir = tmp_path_factory.mktemp("serve-run")
    with _redis(run_dir, persist_redis) as redis_url:
        started = time.perf_counter()
        artifacts = build_tiny_artifacts(tmp_path_factory.mktemp("serve") / "artifacts", redis_url)
        print(f"\nartifacts built in {time.perf_counter() - started:.1f} s: {artifacts.seconds}")
        if persist_redis and not save_snapshot(redis_url):
            raise RuntimeError("Redis did not snapshot the loaded data")

        raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
        port = free_port()
        raw["http_options"]["port"] = port
        application = raw["applications"][0]
        application["args"].update(
            artifacts_dir=str(artifacts.artifacts_dir),
            variant=artifacts.layout.variant,
            mode=artifacts.layout.mode,
            run_dir=str(run_dir),
            redis_url=None,
        )
        application["runtime_env"]["env_vars"].update(env_vars or {})
        raw = with_user_config(
            raw, "Controller", timeouts=RELAXED_TIMEOUTS if timeouts is None else timeouts
        )
        started = time.perf_counter()
        mode = serve_mode_env(default_mode=not serve_mode)
        with mode, guarding_this_process(), _ray(worker_node, ray_init) as cluster:
            try:
                deploy(raw)
                print(f"app deployed in {time.perf_counter() - started:.1f} s")
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as http:
                    base_url = f"http://127.0.0.1:{port}"
                    yield Served(base_url, raw, artifacts, http, run_dir, cluster)
            finally:
                serve.shutdown()


NODE_FAILURE_DETECTION: dict[str, int] = {
    "health_check_period_ms": 500,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3,
}
"""The two-node cluster's GCS declares a silent node dead after 3 failed checks 0.5 s apart
(Ray's defaults: 5 checks 3 s apart), so the node-loss test does not wait 15 s for it."""


@contextlib.contextmanager
def _ray(worker_node: dict[str, Any] | None, ray_init: dict[str, Any]) -> Iterator[Any]:
    """In-process Ray: a local instance, or a head and a worker node (yields the Cluster)."""
    import ray

    if worker_node is None:
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            namespace="serve",
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            **ray_init,
        )
        try:
            yield None
        finally:
            ray.shutdown()
        return
    from ray._common.utils import get_ray_address_file
    from ray.cluster_utils import Cluster

    # Cluster writes its address to /tmp/ray/ray_current_cluster, where `ray status` and
    # `ray.init()` of every user of the machine look, and deletes it at shutdown: put back
    # what was there at once (this process passes the address itself).
    address_file = Path(get_ray_address_file(None))
    saved = address_file.read_bytes() if address_file.exists() else None

    def put_back() -> None:
        if saved is not None:
            address_file.write_bytes(saved)
        else:
            address_file.unlink(missing_ok=True)

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 2,
            "node_ip_address": "127.0.0.1",
            "include_dashboard": False,
            "_system_config": NODE_FAILURE_DETECTION,
            **ray_init,
        },
    )
    put_back()
    try:
        cluster.add_node(node_ip_address="127.0.0.1", **worker_node)
        # ray.init would turn 127.0.0.1 into the machine's address, where this loopback
        # cluster's GCS does not listen.
        with mock.patch("ray._private.services.resolve_ip_for_localhost", lambda host: host):
            ray.init(
                address=cluster.address,
                namespace="serve",
                log_to_driver=False,
                _node_ip_address="127.0.0.1",
            )
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
        put_back()
