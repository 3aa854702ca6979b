"""cluster.yaml and the KubeRay manifest can't be exercised here; check what can be checked."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from deployments.kuberay import MANIFEST, SERVE_CONFIG, render_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_cluster_yaml_passes_rays_own_schema() -> None:
    config = prepare_config(yaml.safe_load((PROJECT_ROOT / "cluster.yaml").read_text()))
    validate_config(config)  # raises jsonschema.ValidationError on a bad config
    assert config["head_node_type"] in config["available_node_types"]
    workers = config["available_node_types"]["ray.worker.cpu"]
    assert workers["min_workers"] < workers["max_workers"], "workers must autoscale"
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start


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
