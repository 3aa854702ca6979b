"""Shared fixtures: the hand-written raw files and an environment free of user settings."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from movierec.settings import get_settings
from tests.models.data._helpers import FIXTURES


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keeps a developer's MOVIEREC_* dataset settings out of the tests."""
    for name in ("MOVIEREC_DATASET_DIR", "MOVIEREC_DATA_DIR", "MOVIEREC_DATASET"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture
def fixture_copy(tmp_path: Path):
    """Returns a function copying one fixture layout directory into tmp_path."""

    def copy(layout: str) -> Path:
        target = tmp_path / "src" / layout
        shutil.copytree(FIXTURES / layout, target)
        return target

    return copy
