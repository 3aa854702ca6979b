from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.data.parsers import parse_directory
from models.data.schema import MovieLens
from models.data.store import atomic_directory, read_dataset, write_dataset
from tests.models.data._helpers import FIXTURES, assert_schema


def leftovers(parent: Path) -> list[str]:
    return sorted(path.name for path in parent.iterdir() if path.name.startswith("."))


def test_atomic_directory_replaces_target(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_directory(target) as scratch:
        (scratch / "new.txt").write_text("new")
        assert not (target / "new.txt").exists()  # not visible before the block ends
    assert sorted(path.name for path in target.iterdir()) == ["new.txt"]
    assert leftovers(tmp_path) == []


def test_atomic_directory_failure_keeps_old_target(tmp_path: Path) -> None:
    target = tmp_path / "ml-100k"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as scratch:
        (scratch / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(path.name for path in target.iterdir()) == ["old.txt"]
    assert leftovers(tmp_path) == []


def test_failed_write_leaves_no_partial_directory(tmp_path: Path) -> None:
    good = parse_directory(FIXTURES / "classic", "ml-100k")
    broken_users = good.users.astype({"age": object}).copy()  # type: ignore[union-attr]
    broken_users.loc[0, "age"] = "not a number"
    broken = MovieLens("ml-100k", good.ratings, good.movies, broken_users)
    target = tmp_path / "ml-100k"
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's conversion error
        write_dataset(broken, target, "test")
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_round_trip_keeps_schema_lists_and_missing_years(tmp_path: Path) -> None:
    original = parse_directory(FIXTURES / "csv", "ml-latest-small")
    target = write_dataset(original, tmp_path / "ml-latest-small", "fixture")
    assert sorted(path.name for path in target.iterdir()) == [
        "manifest.json",
        "movies.parquet",
        "ratings.parquet",
        "tags.parquet",
    ]
    loaded = read_dataset(target, "ml-latest-small")
    assert loaded is not None
    for table in ("ratings", "movies", "tags"):
        assert_schema(table, getattr(loaded, table))
        pd.testing.assert_frame_equal(getattr(loaded, table), getattr(original, table))
    assert loaded.users is None
    assert loaded.movies.loc[5, "genres"] == []
    assert loaded.movies["year"].isna().sum() == 1


def test_directory_without_manifest_is_not_a_cache(tmp_path: Path) -> None:
    (tmp_path / "ml-100k").mkdir()
    assert read_dataset(tmp_path / "ml-100k", "ml-100k") is None
