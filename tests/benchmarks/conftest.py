"""Fixtures of the benchmarks' smoke tests: tiny real artifacts in a real embedded Redis, built
once per session and shared by every smoke test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from movierec.redis_server import embedded_redis
from tests.deployments._artifacts import TinyArtifacts, build_tiny_artifacts


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TinyArtifacts]]:
    """(the run dir whose embedded Redis holds them, the tiny artifacts)."""
    run_dir = tmp_path_factory.mktemp("bench-run")
    with embedded_redis(run_dir) as redis_url:
        artifacts = build_tiny_artifacts(tmp_path_factory.mktemp("bench") / "artifacts", redis_url)
        yield run_dir, artifacts


def app_args(run_dir: Path, artifacts: TinyArtifacts) -> dict[str, Any]:
    """The app's args serving the tiny artifacts from that Redis."""
    return {
        "artifacts_dir": str(artifacts.artifacts_dir),
        "variant": artifacts.layout.variant,
        "mode": artifacts.layout.mode,
        "run_dir": str(run_dir),
    }
