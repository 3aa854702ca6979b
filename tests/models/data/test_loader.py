"""Source order: explicit directory, parquet cache, raw archive, download (loopback only)."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from models.data import VARIANTS, load_dataset, prepare
from models.data.checksums import sha256_file
from models.data.errors import ChecksumError, DatasetError
from models.data.variants import Archive, Counts
from movierec.settings import get_settings
from tests.models.data._helpers import FIXTURES

UNREACHABLE = "http://127.0.0.1:9"  # discard port: connection refused


def test_source_dir_is_parsed_and_cached(tmp_path: Path) -> None:
    prepared = prepare("ml-100k", source_dir=FIXTURES / "classic", data_dir=tmp_path)
    assert prepared.path == tmp_path / "ml-100k"
    assert not prepared.from_cache
    assert prepared.source == f"directory {FIXTURES / 'classic'}"
    assert len(prepared.dataset.ratings) == 6
    assert sorted(p.name for p in prepared.path.iterdir()) == [
        "manifest.json",
        "movies.parquet",
        "ratings.parquet",
        "users.parquet",
    ]
    again = prepare("ml-100k", data_dir=tmp_path)  # no source: the cache
    assert again.from_cache
    for table in ("ratings", "movies", "users"):
        pd.testing.assert_frame_equal(
            getattr(again.dataset, table), getattr(prepared.dataset, table)
        )


def test_source_dir_wins_over_cache(tmp_path: Path) -> None:
    load_dataset("ml-100k", source_dir=FIXTURES / "classic", data_dir=tmp_path)
    data = load_dataset("ml-100k", source_dir=FIXTURES / "atomic", data_dir=tmp_path)
    assert len(data.ratings) == 5
    assert len(load_dataset("ml-100k", data_dir=tmp_path).ratings) == 5  # cache rewritten


def test_settings_dataset_dir_and_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOVIEREC_DATASET_DIR", str(FIXTURES / "dat"))
    monkeypatch.setenv("MOVIEREC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOVIEREC_DATASET", "ml-1m")
    get_settings.cache_clear()
    data = load_dataset()
    assert data.variant == "ml-1m"
    assert len(data.ratings) == 4
    assert (tmp_path / "ml-1m" / "manifest.json").is_file()


def test_variant_subdirectory_of_source_dir(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "csv", tmp_path / "src" / "ml-latest-small")
    data = load_dataset("ml-latest-small", source_dir=tmp_path / "src", data_dir=tmp_path / "d")
    assert len(data.movies) == 6


def _zip_fixture(layout: str, root: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as bundle:
        for file in sorted((FIXTURES / layout).iterdir()):
            bundle.write(file, f"{root}/{file.name}")
    return path


def _pin(monkeypatch: pytest.MonkeyPatch, name: str, url: str, zip_path: Path | None,
         counts: Counts) -> None:  # fmt: skip
    spec = VARIANTS[name]
    sha256 = sha256_file(zip_path) if zip_path else spec.archive.sha256
    size = zip_path.stat().st_size if zip_path else spec.archive.size
    archive = Archive(url=url, sha256=sha256, size=size, root=spec.archive.root)
    monkeypatch.setitem(VARIANTS, name, dataclasses.replace(spec, archive=archive, expected=counts))


DAT_COUNTS = Counts(ratings=4, users=2, movies=4)


def test_cached_archive_is_verified_and_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _zip_fixture("dat", "ml-1m", tmp_path / "raw" / "ml-1m.zip")
    _pin(monkeypatch, "ml-1m", f"{UNREACHABLE}/ml-1m.zip", archive, DAT_COUNTS)
    prepared = prepare("ml-1m", data_dir=tmp_path)
    assert prepared.source == f"archive {archive}"
    assert len(prepared.dataset.users) == 2  # type: ignore[arg-type]


def test_archive_with_wrong_counts_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _zip_fixture("dat", "ml-1m", tmp_path / "raw" / "ml-1m.zip")
    _pin(monkeypatch, "ml-1m", f"{UNREACHABLE}/ml-1m.zip", archive,
         Counts(ratings=1_000_209, users=6_040, movies=3_883))  # fmt: skip
    with pytest.raises(DatasetError, match="ratings: expected 1,000,209, got 4"):
        prepare("ml-1m", data_dir=tmp_path)
    assert not (tmp_path / "ml-1m").exists()


def test_unreachable_grouplens_fails_fast_without_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pin(monkeypatch, "ml-1m", f"{UNREACHABLE}/ml-1m.zip", None, DAT_COUNTS)
    started = time.monotonic()
    with pytest.raises(DatasetError) as caught:
        prepare("ml-1m", data_dir=tmp_path)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert f"could not download {UNREACHABLE}/ml-1m.zip" in message
    assert "--source-dir" in message
    assert not (tmp_path / "ml-1m").exists()
    assert list((tmp_path / "raw").iterdir()) == []  # no partial download


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """An HTTP server on loopback serving tmp_path/www; yields (base URL, directory)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_download_is_verified_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: tuple[str, Path]
) -> None:
    base, root = served
    archive = _zip_fixture("dat", "ml-1m", root / "ml-1m.zip")
    _pin(monkeypatch, "ml-1m", f"{base}/ml-1m.zip", archive, DAT_COUNTS)
    data_dir = tmp_path / "data"
    prepared = prepare("ml-1m", data_dir=data_dir)
    cached = data_dir / "raw" / "ml-1m.zip"
    assert prepared.source == f"archive {cached}"
    assert cached.read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in (data_dir / "raw").iterdir()) == ["ml-1m.zip"]


def test_download_with_wrong_checksum_is_discarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: tuple[str, Path]
) -> None:
    base, root = served
    archive = _zip_fixture("dat", "ml-1m", root / "ml-1m.zip")
    _pin(monkeypatch, "ml-1m", f"{base}/ml-1m.zip", archive, DAT_COUNTS)
    archive.write_bytes(archive.read_bytes() + b"tampered")
    data_dir = tmp_path / "data"
    with pytest.raises(ChecksumError, match=f"{base}/ml-1m.zip") as caught:
        prepare("ml-1m", data_dir=data_dir)
    assert "expected sha256" in str(caught.value)
    assert list((data_dir / "raw").iterdir()) == []
    assert not (data_dir / "ml-1m").exists()


def test_http_error_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: tuple[str, Path]
) -> None:
    base, _ = served
    _pin(monkeypatch, "ml-1m", f"{base}/missing.zip", None, DAT_COUNTS)
    with pytest.raises(DatasetError, match="HTTP 404"):
        prepare("ml-1m", data_dir=tmp_path)
