"""ScaNN build parameters and the check of its separate venv (no ScaNN run here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks.scalebench.scann_index import (
    ScannUnavailableError,
    check_scann_python,
    scann_params,
)


def test_params_follow_the_sqrt_recipe() -> None:
    params = scann_params(1_000_000, 100)
    assert params["num_leaves"] == 1000
    assert params["num_leaves_to_search"] == 100
    assert params["training_sample_size"] == 250_000
    assert params["reorder"] == 400
    small = scann_params(500, 100)
    assert small["num_leaves"] == 1  # no partitioning of a tiny catalog
    assert small["reorder"] == 400 and scann_params(300, 100)["reorder"] == 300


def test_missing_venv_names_the_make_target(tmp_path: Path) -> None:
    with pytest.raises(ScannUnavailableError, match="make scann-venv"):
        check_scann_python(tmp_path / "nope" / "python")


def test_a_python_without_scann_is_refused() -> None:
    # This interpreter is the project's venv, where scann must NOT be installed.
    with pytest.raises(ScannUnavailableError, match="has no scann"):
        check_scann_python(Path(sys.executable))
