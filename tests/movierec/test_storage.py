"""`movierec.storage` against the local S3 server (moto, credentials checked): publishing,
the atomic CURRENT, the checked cache, and the errors a user gets."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from movierec.s3_server import PROFILE
from movierec.storage import BUILD_FILE, ArtifactSource, ObjectStore, StorageError, StoreURI

VARIANT, MODE = "ml-100k", "eval"


def _build(root: Path, marker: str) -> Path:
    (root / "retrieval" / "saved_model").mkdir(parents=True)
    (root / "retrieval" / "saved_model" / "saved_model.pb").write_bytes(marker.encode() * 1000)
    (root / "catalog").mkdir()
    (root / "catalog" / "movies.parquet").write_text(f"movies of {marker}")
    (root / "manifest.json").write_text("{}")
    return root


def test_store_uri_is_checked() -> None:
    assert StoreURI.parse("s3://bucket/a/b/") == StoreURI("bucket", "a/b")
    assert StoreURI.parse("s3://bucket").uri("x") == "s3://bucket/x"
    for bad in ("/local/dir", "gs://bucket/p", "s3://", "s3://key:secret@bucket/p"):
        with pytest.raises(ValueError, match="storage URI"):
            StoreURI.parse(bad)


@pytest.mark.integration
def test_publish_fetch_and_reuse_the_cache(s3_env: dict[str, str], tmp_path: Path) -> None:
    uri = s3_env["MOVIEREC_STORAGE_URI"]
    store = ObjectStore(uri)
    first = _build(tmp_path / "a", "first")
    second = _build(tmp_path / "b", "second")
    store.publish(first, VARIANT, MODE, "b1")
    assert store.current(VARIANT, MODE) == "b1"
    store.publish(second, VARIANT, MODE, "b2")
    assert store.current(VARIANT, MODE) == "b2"
    assert store.builds(VARIANT, MODE) == ["b1", "b2"]

    cache = tmp_path / "cache"
    source = ArtifactSource(tmp_path, VARIANT, MODE, uri, cache_dir=cache)
    current = source.layout("")
    assert current.root == cache / VARIANT / MODE / "b2"
    assert (current.catalog_dir / "movies.parquet").read_text() == "movies of second"
    pinned = source.layout("b1")
    assert (pinned.catalog_dir / "movies.parquet").read_text() == "movies of first"
    assert (source.store().downloads, source.store().cache_hits) == (2, 0)

    # A restart (a new process: a new store object) finds both builds in the cache.
    again = ObjectStore(uri)
    assert again.fetch(VARIANT, MODE, "b1", cache) == pinned.root
    assert (again.downloads, again.cache_hits) == (0, 1)
    # A corrupted cached file is noticed (checksum) and the build downloaded again.
    (pinned.catalog_dir / "movies.parquet").write_text("movies of someone else")
    assert again.fetch(VARIANT, MODE, "b1", cache) == pinned.root
    assert (pinned.catalog_dir / "movies.parquet").read_text() == "movies of first"
    assert again.downloads == 1
    assert sorted(p.name for p in (cache / VARIANT / MODE).iterdir()) == ["b1", "b2"]


@pytest.mark.integration
def test_a_partial_build_never_becomes_current(s3_env: dict[str, str], tmp_path: Path) -> None:
    uri = s3_env["MOVIEREC_STORAGE_URI"]
    store = ObjectStore(uri)
    good = _build(tmp_path / "good", "good")
    store.publish(good, VARIANT, MODE, "good")
    broken = _build(tmp_path / "broken", "broken")
    store.upload(broken, VARIANT, MODE, "broken")
    store.fs.rm_file(store.location.key(VARIANT, MODE, "builds", "broken", "manifest.json"))
    with pytest.raises(StorageError, match=r"build broken is partial .* CURRENT left unchanged"):
        store.commit(broken, VARIANT, MODE, "broken")
    assert store.current(VARIANT, MODE) == "good"
    assert store.builds(VARIANT, MODE) == ["good"]
    with pytest.raises(StorageError, match=r"build broken is partial \(no BUILD.json") as err:
        store.fetch(VARIANT, MODE, "broken", tmp_path / "cache")
    assert uri in str(err.value)
    assert not (tmp_path / "cache" / VARIANT / MODE / "broken").exists()
    assert BUILD_FILE not in str(list((tmp_path / "cache").rglob("*")))


@pytest.mark.integration
def test_errors_name_the_uri_never_the_secret(
    s3_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = s3_env["MOVIEREC_STORAGE_URI"]
    parser = configparser.ConfigParser()
    parser.read(s3_env["AWS_SHARED_CREDENTIALS_FILE"])
    secret = parser[PROFILE]["aws_secret_access_key"]
    cache = tmp_path / "cache"

    def failure(store: ObjectStore) -> str:
        with pytest.raises(StorageError) as err:
            store.fetch(VARIANT, MODE, "", cache)
        text = str(err.value)
        assert store.uri in text and secret not in text
        return text

    assert "endpoint unreachable" in failure(ObjectStore(uri, "http://127.0.0.1:9"))
    hidden = ObjectStore(uri, "http://user:hunter2@127.0.0.1:9")
    assert "hunter2" not in hidden.describe() and "127.0.0.1:9" in hidden.describe()
    bucket = "s3://no-such-bucket-here/p"
    assert "bucket missing" in failure(ObjectStore(bucket))
    assert "nothing published" in failure(ObjectStore(uri))

    wrong = tmp_path / "credentials"
    wrong.write_text(
        f"[{PROFILE}]\naws_access_key_id = {parser[PROFILE]['aws_access_key_id']}\n"
        f"aws_secret_access_key = {secret[::-1]}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(wrong))
    text = failure(ObjectStore(uri))
    assert "credentials refused" in text and secret[::-1] not in text
