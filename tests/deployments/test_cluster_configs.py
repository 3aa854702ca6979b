"""cluster.yaml and the KubeRay manifest can't be exercised here; check what can be checked:
Ray's own schema, and that every node starts with Ray token auth and its metrics agent on the
port the README's threat model names."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from deployments.kuberay import MANIFEST, METRICS_PORT, SERVE_CONFIG, render_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKEN_FILE = "~/.ray/auth_token"  # where `ray get-auth-token --generate` writes it
NODE_PORTS = {
    "--node-manager-port": "6380",
    "--object-manager-port": "6381",
    "--runtime-env-agent-port": "6382",
    "--dashboard-agent-grpc-port": "6383",
    "--dashboard-agent-listen-port": "52365",
    "--metrics-export-port": str(METRICS_PORT),
    "--min-worker-port": "10002",
    "--max-worker-port": "19999",
}
"""The ports every node's `ray start` fixes (README threat model, "Multi-node ports")."""


def _cluster() -> dict[str, Any]:
    config: dict[str, Any] = prepare_config(
        yaml.safe_load((PROJECT_ROOT / "cluster.yaml").read_text())
    )
    return config


def _ray_starts(commands: list[str]) -> list[list[str]]:
    """The `ray start` invocations of a node's start commands, each as its words (the
    environment assignments in front included)."""
    starts = []
    for command in commands:
        for step in command.split("&&"):
            words = shlex.split(step)
            if "start" in words and any(w.endswith("ray") for w in words):
                starts.append(words)
    return starts


def test_cluster_yaml_passes_rays_own_schema() -> None:
    config = _cluster()
    validate_config(config)  # raises jsonschema.ValidationError on a bad config
    assert config["head_node_type"] in config["available_node_types"]
    workers = config["available_node_types"]["ray.worker.cpu"]
    assert workers["min_workers"] < workers["max_workers"], "workers must autoscale"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start


def test_every_cluster_node_starts_with_token_auth() -> None:
    config = _cluster()
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        (start,) = _ray_starts(config[key])  # one `ray start` per node kind
        assert "RAY_AUTH_MODE=token" in start[: start.index("start")], (key, start)
        flags = dict(w.split("=", 1) for w in start if w.startswith("--") and "=" in w)
        assert {f: flags.get(f) for f in NODE_PORTS} == NODE_PORTS, key
    # the token reaches every node (file_mounts are synced to the head and then the workers),
    # and setup fails on a node without it
    assert config["file_mounts"][TOKEN_FILE] == TOKEN_FILE
    assert any(
        c.startswith(f"test -s {TOKEN_FILE}") and "chmod 600" in c for c in config["setup_commands"]
    )
    # no extra inbound rule: Ray's defaults (the cluster's own nodes, SSH) only
    group = config["provider"]["security_group"]
    assert not group.get("IpPermissions"), "every other port stays inside the cluster"


def test_committed_rayservice_is_up_to_date_with_serve_config() -> None:
    assert MANIFEST.read_text() == render_text(), "run: python -m deployments.kuberay > " + str(
        MANIFEST.relative_to(PROJECT_ROOT)
    )


def test_rayservice_embeds_exactly_the_serve_applications() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["apiVersion"] == "ray.io/v1"
    assert manifest["kind"] == "RayService"
    embedded = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    serve = yaml.safe_load(SERVE_CONFIG.read_text())
    assert embedded["applications"] == serve["applications"]
    cluster = manifest["spec"]["rayClusterConfig"]
    assert "serviceType" not in cluster["headGroupSpec"], "the head must not be exposed"
    group = cluster["workerGroupSpecs"][0]
    assert group["minReplicas"] < group["maxReplicas"]
    for container in group["template"]["spec"]["containers"]:
        names = {e["name"] for e in container["env"]}
        assert "REDIS_URL" in names
        assert all("value" not in e for e in container["env"] if e["name"] == "REDIS_URL")


def test_rayservice_starts_every_node_with_token_auth() -> None:
    cluster = yaml.safe_load(MANIFEST.read_text())["spec"]["rayClusterConfig"]
    # KubeRay >= 1.5.1 generates the token Secret, injects RAY_AUTH_TOKEN, and authenticates
    # its own calls to the dashboard
    assert cluster["authOptions"] == {"mode": "token"}
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        assert group["rayStartParams"]["metrics-export-port"] == str(METRICS_PORT)
        for container in group["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            # explicit, so a node refuses to start without a token (an operator that drops
            # authOptions) instead of starting open; the token itself is never in the manifest
            assert env["RAY_AUTH_MODE"] == {"name": "RAY_AUTH_MODE", "value": "token"}
            assert "RAY_AUTH_TOKEN" not in env
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            assert ports["metrics"] == METRICS_PORT
    head_ports = {
        p["name"]: p["containerPort"]
        for p in cluster["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert head_ports == {"gcs-server": 6379, "dashboard": 8265, "serve": 8000, "metrics": 8080}


def test_artifacts_come_from_the_store_not_with_the_code() -> None:
    """cluster.yaml ships no artifacts (replicas fetch builds from MOVIEREC_STORAGE_URI);
    every KubeRay pod gets the store's settings, the AWS chain's ServiceAccount and a cache."""
    from deployments.kuberay import CACHE_DIR, SERVICE_ACCOUNT, STORAGE_CONFIG

    assert "artifacts" in _cluster()["rsync_exclude"]
    workers = _cluster()["available_node_types"]["ray.worker.cpu"]["node_config"]
    assert workers["IamInstanceProfile"]["Name"]
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]["rayClusterConfig"]
    pods = [spec["headGroupSpec"]["template"]["spec"]]
    pods += [group["template"]["spec"] for group in spec["workerGroupSpecs"]]
    for pod in pods:
        assert pod["serviceAccountName"] == SERVICE_ACCOUNT
        (container,) = pod["containers"]
        assert {"configMapRef": {"name": STORAGE_CONFIG}} in container["envFrom"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["MOVIEREC_STORAGE_CACHE_DIR"] == CACHE_DIR
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"artifact-cache": CACHE_DIR}
        assert {v["name"] for v in pod["volumes"]} == {"artifact-cache"}
        assert not any("SECRET" in name or "KEY" in name for name in env)
