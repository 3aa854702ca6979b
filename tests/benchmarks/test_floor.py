"""The floor benchmark's pure parts: the Controller config changes it applies."""

from __future__ import annotations

from benchmarks.floor import merged
from deployments.config import ControllerConfig


def test_controller_changes_merge_into_nested_settings() -> None:
    base = ControllerConfig().model_dump()
    changed = merged(base, {"candidates": {"max_ranked": 150}, "rules": {"genre_cap": 0}})
    config = ControllerConfig.model_validate(changed)
    assert config.candidates.max_ranked == 150 and config.rules.genre_cap == 0
    assert config.candidates.retrieval == ControllerConfig().candidates.retrieval  # kept
    assert base["candidates"]["max_ranked"] == ControllerConfig().candidates.max_ranked
