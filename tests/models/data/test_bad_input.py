"""Bad input gives a DatasetError naming the file (and line) or value at fault."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest

from models.data import get_variant, load_dataset, parse_directory
from models.data.archives import extract_files
from models.data.checksums import sha256_file
from models.data.errors import ChecksumError, DatasetError
from models.data.grouplens import fetch_archive
from models.data.variants import Archive, Variant


def test_unknown_variant_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset("ml-10k", data_dir=tmp_path)
    message = str(caught.value)
    assert "'ml-10k'" in message
    for name in ("ml-100k", "ml-1m", "ml-latest-small", "ml-25m"):
        assert name in message


def test_missing_file_is_named(fixture_copy) -> None:
    source = fixture_copy("classic")
    (source / "u.user").unlink()
    with pytest.raises(DatasetError, match=re.escape(f"missing file: {source / 'u.user'}")):
        parse_directory(source, "ml-100k")


def test_directory_without_ratings_lists_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        load_dataset("ml-100k", source_dir=tmp_path, data_dir=tmp_path / "data")
    message = str(caught.value)
    assert str(tmp_path) in message
    assert "u.data" in message
    assert "ratings.csv" in message


def test_missing_source_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DatasetError, match=f"source directory does not exist: {missing}"):
        load_dataset("ml-100k", source_dir=missing, data_dir=tmp_path / "data")


def test_wrong_column_count_names_file_and_line(fixture_copy) -> None:
    source = fixture_copy("classic")
    path = source / "u.data"
    lines = path.read_text().splitlines()
    lines[2] += "\t99"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 3: expected 4 fields")):
        parse_directory(source, "ml-100k")


def test_short_line_names_file_and_line(fixture_copy) -> None:
    source = fixture_copy("csv")
    path = source / "movies.csv"
    with path.open("a", encoding="utf-8") as handle:
        handle.write("99,Short Line (2000)\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 8: expected 3 fields")):
        parse_directory(source, "ml-latest-small")


def test_unparsable_value_names_file_line_and_value(fixture_copy) -> None:
    source = fixture_copy("dat")
    path = source / "ratings.dat"
    path.write_text(path.read_text().replace("1::661::3::", "1::six-six-one::3::"))
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 2: 'six-six-one'")):
        parse_directory(source, "ml-1m")


def test_corrupt_binary_file_names_file(fixture_copy) -> None:
    source = fixture_copy("csv")
    path = source / "ratings.csv"
    path.write_bytes(os.urandom(64) + b"\xff\xfe\n")
    with pytest.raises(DatasetError, match=re.escape(str(path))):
        parse_directory(source, "ml-latest-small")


def test_invalid_utf8_names_line(fixture_copy) -> None:
    source = fixture_copy("atomic")
    path = source / "ml-100k.item"
    path.write_bytes(path.read_bytes().replace("Misérables".encode(), b"Mis\xe9rables"))
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 6: not valid utf-8")):
        parse_directory(source, "ml-100k")


def test_wrong_csv_header(fixture_copy) -> None:
    source = fixture_copy("csv")
    path = source / "ratings.csv"
    path.write_text(path.read_text().replace("userId,movieId", "user,movie"))
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 1: expected header")):
        parse_directory(source, "ml-latest-small")


def test_rating_out_of_range(fixture_copy) -> None:
    source = fixture_copy("classic")
    path = source / "u.data"
    path.write_text(path.read_text().replace("2\t3\t2\t", "2\t3\t7\t"))
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 4: rating 7.0 outside")):
        parse_directory(source, "ml-100k")


def test_duplicate_movie_id(fixture_copy) -> None:
    source = fixture_copy("dat")
    path = source / "movies.dat"
    with path.open("a", encoding="latin-1") as handle:
        handle.write("661::Again (1996)::Drama\n")
    with pytest.raises(DatasetError, match=re.escape(f"{path}, line 5: duplicate movie id 661")):
        parse_directory(source, "ml-1m")


def test_ratings_referencing_unknown_movie(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("csv")
    with (source / "ratings.csv").open("a", encoding="utf-8") as handle:
        handle.write("3,424242,4.0,1445715000\n")
    with pytest.raises(DatasetError, match="424242"):
        load_dataset("ml-latest-small", source_dir=source, data_dir=tmp_path / "data")
    assert not (tmp_path / "data" / "ml-latest-small").exists()


def _fake_variant(tmp_path: Path, sha256: str | None) -> Variant:
    spec = get_variant("ml-100k")
    archive = Archive(url="http://127.0.0.1:9/ml-100k.zip", sha256=sha256, size=None, root="x")
    return Variant(spec.name, spec.layout, archive, spec.expected)


def _fake_zip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr("ml-100k/u.data", "1\t1\t5\t874965758\n")
    return path


def test_checksum_mismatch_shows_file_expected_and_actual(tmp_path: Path) -> None:
    archive = _fake_zip(tmp_path / "raw" / "ml-100k.zip")
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as caught:
        fetch_archive(tmp_path / "raw", _fake_variant(tmp_path, wrong))
    message = str(caught.value)
    assert str(archive) in message
    assert f"expected sha256 {wrong}" in message
    assert f"got {sha256_file(archive)}" in message


def test_checksum_mismatch_in_source_dir_leaves_no_output(tmp_path: Path) -> None:
    source = tmp_path / "src"
    _fake_zip(source / "ml-100k.zip")  # not the real archive: fails the pinned checksum
    data_dir = tmp_path / "data"
    with pytest.raises(ChecksumError, match=re.escape(str(source / "ml-100k.zip"))):
        load_dataset("ml-100k", source_dir=source, data_dir=data_dir)
    assert not (data_dir / "ml-100k").exists()
    assert not data_dir.exists() or not list(data_dir.iterdir())


def test_unverified_archive_is_refused_without_flag(tmp_path: Path) -> None:
    _fake_zip(tmp_path / "raw" / "ml-100k.zip")
    with pytest.raises(DatasetError, match="--allow-unverified"):
        fetch_archive(tmp_path / "raw", _fake_variant(tmp_path, None))
    path = fetch_archive(tmp_path / "raw", _fake_variant(tmp_path, None), allow_unverified=True)
    assert path == tmp_path / "raw" / "ml-100k.zip"


def test_not_a_zip_names_archive(tmp_path: Path) -> None:
    bogus = tmp_path / "ml-100k.zip"
    bogus.write_bytes(b"definitely not a zip")
    with pytest.raises(DatasetError, match=re.escape(f"{bogus}: not a valid zip")):
        extract_files(bogus, "ml-100k", ("u.data",), (), tmp_path)
