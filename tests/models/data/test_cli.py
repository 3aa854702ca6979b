from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from models.data.cli import main
from tests.models.data._helpers import FIXTURES

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_prints_counts_and_writes_stratified_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--variant", "ml-100k", "--source-dir", str(FIXTURES / "classic")]
    status = main([*argv, "--data-dir", str(tmp_path), "--split", "stratified"])
    out = capsys.readouterr().out
    assert status == 0
    assert "loaded ml-100k from directory" in out
    assert "6 ratings, 3 users, 4 movies" in out
    assert f"wrote {tmp_path / 'ml-100k'}" in out
    split = tmp_path / "ml-100k" / "splits" / "stratified"
    train = pd.read_parquet(split / "train.parquet")
    test = pd.read_parquet(split / "test.parquet")
    assert len(train) + len(test) == 6
    assert set(train["user_id"]) == {1, 2, 3}


def test_temporal_split_from_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--source-dir", str(FIXTURES / "classic"), "--data-dir", str(tmp_path)])
    status = main(["--data-dir", str(tmp_path), "--split", "temporal"])
    out = capsys.readouterr().out
    assert status == 0
    assert f"cached in {tmp_path / 'ml-100k'}" in out
    test = pd.read_parquet(tmp_path / "ml-100k" / "splits" / "temporal" / "test.parquet")
    assert sorted(test["timestamp"]) == [876893171, 888551000, 889237500]


def test_data_error_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "u.data").write_text("1\t1\t5\n")
    status = main(["--source-dir", str(source), "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert status == 2
    assert f"error: {source / 'u.data'}, line 1: expected 4 fields" in err
    assert "Traceback" not in err
    assert not (tmp_path / "data" / "ml-100k").exists()


def test_module_entry_point_unknown_variant(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "models.data", "--variant", "nope", "--data-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown variant 'nope'")
    assert "Traceback" not in result.stderr
