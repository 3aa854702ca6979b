"""serve_config.yaml against Ray Serve's schema and ours; the runtime config models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError
from ray.serve.schema import ServeDeploySchema

from deployments.app import AppArgs
from deployments.config import (
    ContentSettings,
    ControllerConfig,
    FeaturesSettings,
    RankingSettings,
    RetrievalSettings,
    ServingContext,
)
from deployments.events import EventsSettings
from movierec.rules import RuleConfig

ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILE = ROOT / "serve_config.yaml"
MACHINE_CPUS = 2.0
SETTINGS: dict[str, type[BaseModel]] = {
    "Controller": ControllerConfig,
    "Retrieval": RetrievalSettings,
    "Features": FeaturesSettings,
    "Content": ContentSettings,
    "Ranking": RankingSettings,
    "Events": EventsSettings,
}
REQUIRED = (
    "autoscaling_config",
    "ray_actor_options",
    "max_ongoing_requests",
    "max_queued_requests",
    "health_check_period_s",
    "health_check_timeout_s",
    "user_config",
)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(CONFIG_FILE.read_text())


def test_serve_config_matches_ray_serve_schema(raw: dict[str, Any]) -> None:
    config = ServeDeploySchema.model_validate(raw)
    assert config.http_options.host == "127.0.0.1"
    assert config.http_options.port == 8000
    (app,) = config.applications
    assert app.route_prefix == "/"
    assert app.import_path == "deployments.app:build_app"
    assert {d.name for d in app.deployments} == set(SETTINGS)


def test_every_deployment_is_fully_configured(raw: dict[str, Any]) -> None:
    for deployment in raw["applications"][0]["deployments"]:
        missing = [key for key in REQUIRED if key not in deployment]
        assert not missing, f"{deployment['name']} lacks {missing}"
        autoscaling = deployment["autoscaling_config"]
        assert 1 <= autoscaling["min_replicas"] <= autoscaling["max_replicas"]
        assert autoscaling["target_ongoing_requests"] <= deployment["max_ongoing_requests"]
        assert 0 < deployment["ray_actor_options"]["num_cpus"] < 1
        assert deployment["health_check_timeout_s"] >= deployment["health_check_period_s"]


def test_user_configs_validate_against_the_deployments_models(raw: dict[str, Any]) -> None:
    for deployment in raw["applications"][0]["deployments"]:
        SETTINGS[deployment["name"]].model_validate(deployment["user_config"])
    ranking = next(d for d in raw["applications"][0]["deployments"] if d["name"] == "Ranking")
    # Serve wants max_ongoing_requests >= max_batch_size (one batch in flight at a time).
    assert ranking["max_ongoing_requests"] >= ranking["user_config"]["max_batch_size"]


def test_replicas_fit_two_cores_with_headroom(raw: dict[str, Any]) -> None:
    deployments = raw["applications"][0]["deployments"]

    def cpus(replicas: str) -> float:
        return sum(
            d["ray_actor_options"]["num_cpus"] * d["autoscaling_config"][replicas]
            for d in deployments
        )

    # 1.05: the Events deployment (0.05) came on top of the 1.0 of the stages and Controllers.
    assert cpus("min_replicas") <= 0.525 * MACHINE_CPUS + 1e-9
    assert cpus("max_replicas") <= 0.9 * MACHINE_CPUS + 1e-9


def test_app_args_resolve_to_absolute_paths(raw: dict[str, Any]) -> None:
    args = AppArgs.model_validate(raw["applications"][0]["args"])
    context = args.context()
    assert context.artifacts_dir.is_absolute() and context.run_dir.is_absolute()
    assert context.variant  # null in the file: MOVIEREC_DATASET, else ml-100k
    assert context.mode in ("eval", "full")  # null in the file: MOVIEREC_MODE, else eval
    assert context.redis_url is None
    with pytest.raises(ValidationError):
        AppArgs.model_validate({"artifact_dir": "/x"})  # typo: refused, not ignored
    with pytest.raises(ValidationError):
        AppArgs.model_validate({"mode": "prod"})


def test_app_args_mode_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOVIEREC_MODE", raising=False)
    assert AppArgs().context().mode == "eval"
    monkeypatch.setenv("MOVIEREC_MODE", "full")
    assert AppArgs().context().mode == "full"
    assert AppArgs(mode="eval").context().mode == "eval"
    monkeypatch.setenv("MOVIEREC_MODE", "prod")
    with pytest.raises(ValidationError):
        AppArgs().context()


def test_serving_context_hides_the_redis_password() -> None:
    context = ServingContext(
        artifacts_dir=Path("/a"),
        variant="ml-100k",
        mode="eval",
        run_dir=Path("/r"),
        redis_url="redis://:s3cret@127.0.0.1:6400/0",  # type: ignore[arg-type]
    )
    assert "s3cret" not in repr(context) and "s3cret" not in str(context.model_dump())
    assert context.layout.content_index_alias == "ml_100k_eval_movies"


def test_controller_config_defaults_and_validation() -> None:
    config = ControllerConfig()
    assert config.rules.to_rule_config() == RuleConfig()
    counts = config.candidates
    # the whole candidate union reaches the ranker (learned fusion, not an RRF cut)
    assert counts.max_ranked >= counts.retrieval + counts.content + counts.itemcf
    parsed = ControllerConfig.model_validate(
        {"rules": {"genre_cap": 1, "promoted_ids": [5, 7], "promoted_boost": 0.5}}
    )
    assert parsed.rules.to_rule_config().promoted_ids == frozenset({5, 7})
    bad: dict[str, Any]
    for bad in (
        {"candidate": {}},  # typo
        {"weights": {"bm25": 1.0}},
        {"weights": {"content": -1.0}},
        {"timeouts": {"ranking": 0}},
        {"candidates": {"max_ranked": 0}},
    ):
        with pytest.raises(ValidationError):
            ControllerConfig.model_validate(bad)


def test_stage_settings_reject_out_of_range_values() -> None:
    assert RankingSettings().max_batch_size >= 2
    for model, bad in (
        (RankingSettings, {"max_batch_size": 0}),
        (RankingSettings, {"batch_wait_timeout_s": -1}),
        (RankingSettings, {"movie_cache": {"ttl_s": -1}}),
        (RankingSettings, {"movie_cache": {"prefetch": 2000, "refresh_s": 1}}),
        (ContentSettings, {"aggregation": "mean"}),
        (ContentSettings, {"n_seeds": 0}),
        (ContentSettings, {"n_seeds": 101}),
        (FeaturesSettings, {"movie_cache_ttl_s": 300}),  # Ranking caches movie features now
        (RetrievalSettings, {"max_n": 0}),
    ):
        with pytest.raises(ValidationError):
            model.model_validate(bad)


def test_served_candidate_settings_are_the_rankers_training_settings() -> None:
    from dataclasses import asdict

    from deployments.candidate_check import candidate_mismatch
    from models.ranking.config import RankerConfig

    trained = asdict(RankerConfig().candidates)
    config = yaml.safe_load(CONFIG_FILE.read_text())
    (app,) = config["applications"]
    controller = next(d for d in app["deployments"] if d["name"] == "Controller")
    served = ControllerConfig.model_validate(controller["user_config"])
    assert candidate_mismatch(served, trained) == []
    assert candidate_mismatch(ControllerConfig(), trained) == []
