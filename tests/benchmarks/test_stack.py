"""The benchmarks' view of `serve_config.yaml` (no services)."""

from __future__ import annotations

from benchmarks.stack import ServeConfig


def test_a_deployments_user_config_can_be_overridden_without_touching_the_original() -> None:
    config = ServeConfig.load()
    moved = config.with_user_config("Events", offline_dir="/tmp/bench-events")
    assert moved.user_config("Events")["offline_dir"] == "/tmp/bench-events"
    assert (
        moved.user_config("Events")["dedup_window_s"]
        == config.user_config("Events")["dedup_window_s"]
    )
    assert config.user_config("Events")["offline_dir"] is None
    assert moved.user_config("Controller") == config.user_config("Controller")
