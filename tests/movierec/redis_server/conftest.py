"""Fixtures of the embedded server's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from movierec.redis_server import stop


@pytest.fixture
def run_dir(tmp_path: Path) -> Iterator[Path]:
    """A run dir whose embedded Redis is stopped at the end, whatever happens."""
    yield tmp_path
    stop(tmp_path)
