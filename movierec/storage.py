"""Where builds live: the local artifacts directory, or an S3-compatible object store.

`MOVIEREC_STORAGE_URI` chooses. Empty (the default) keeps today's local tree
(`<artifacts_dir>/<variant>/<mode>`, a symlink `make artifacts` flips). `s3://bucket/prefix`
publishes every finished build to the store and serves from it:

    s3://bucket/prefix/<variant>/<mode>/CURRENT                 build id of the live build
    s3://bucket/prefix/<variant>/<mode>/builds/<id>/...         the build's files
    s3://bucket/prefix/<variant>/<mode>/builds/<id>/BUILD.json  written last: every file's
                                                                size and SHA-256

A build counts as published only once its `BUILD.json` exists, and `CURRENT` (one object,
replaced by one PUT) moves only after that, so a reader never sees a half-written build as
current: the object-store form of the local symlink's atomic flip. A replica fetches a
build into a local cache (`<cache_dir>/<variant>/<mode>/<id>/`), checking every file
against `BUILD.json`, and reuses a cached build (checked again) after a restart.

S3 is reached through fsspec/s3fs; the endpoint comes from `AWS_ENDPOINT_URL` (any
S3-compatible service) and the credentials from the standard AWS chain only (environment,
shared credentials file, instance or pod role), never from a config file. Errors name the
URI and the endpoint, never a secret.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from movierec.layout import ArtifactLayout, Mode

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
BUILD_FILE = "BUILD.json"
CURRENT_VERSION = "current"
"""The `model_version` (like the empty one) that means "the build CURRENT names"."""

_CHUNK = 1 << 20


class StorageError(RuntimeError):
    """The store cannot be used: unreachable, no bucket, credentials refused, build partial."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.startswith(".") and path.name != BUILD_FILE:
            yield path


@dataclass(frozen=True)
class StoreURI:
    """A parsed `s3://bucket/prefix` (the prefix may be empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, uri: str) -> StoreURI:
        """Parses and checks an `s3://` URI.

        Raises:
            ValueError: Not an s3:// URI, or no bucket.
        """
        parts = urlsplit(uri)
        if parts.scheme != "s3":
            raise ValueError(f"storage URI must be empty (local) or s3://bucket/prefix: {uri!r}")
        if not parts.netloc or "@" in parts.netloc:
            raise ValueError(f"storage URI needs a bucket and no credentials: {uri!r}")
        return cls(parts.netloc, parts.path.strip("/"))

    def key(self, *parts: str) -> str:
        """`bucket/prefix/part/...` (fsspec's form, no scheme)."""
        return "/".join(p for p in (self.bucket, self.prefix, *parts) if p)

    def uri(self, *parts: str) -> str:
        """`s3://bucket/prefix/part/...`."""
        return "s3://" + self.key(*parts)


class ObjectStore:
    """Builds of every artifacts tree under one `s3://` URI.

    Args:
        uri: `s3://bucket/prefix`.
        endpoint_url: An S3-compatible endpoint (None: `AWS_ENDPOINT_URL`, else AWS).
        filesystem: An fsspec filesystem to use instead of a new s3fs one (tests).
    """

    def __init__(self, uri: str, endpoint_url: str | None = None, filesystem: Any = None) -> None:
        self.location = StoreURI.parse(uri)
        self.uri = self.location.uri()
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        self._fs = filesystem
        self.downloads = 0
        """Builds this process downloaded."""
        self.cache_hits = 0
        """Fetches this process answered from the local cache."""

    @property
    def fs(self) -> Any:
        """The s3fs filesystem (credentials from the AWS chain; a bounded retry policy so an
        unreachable endpoint fails in seconds)."""
        if self._fs is None:
            import s3fs

            self._fs = s3fs.S3FileSystem(
                endpoint_url=self.endpoint_url,
                skip_instance_cache=True,
                config_kwargs={
                    "connect_timeout": 5,
                    "read_timeout": 60,
                    "retries": {"max_attempts": 2, "mode": "standard"},
                },
            )
        return self._fs

    def describe(self) -> str:
        """The URI and endpoint, for messages (no secret: credentials are never held here,
        and user info in an endpoint URL is dropped)."""
        endpoint = "AWS default"
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            endpoint = parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()
        return f"{self.uri} (endpoint {endpoint})"

    def tree_uri(self, variant: str, mode: str) -> str:
        """`s3://.../<variant>/<mode>`."""
        return self.location.uri(variant, mode)

    def build_uri(self, variant: str, mode: str, build_id: str) -> str:
        """`s3://.../<variant>/<mode>/builds/<id>`."""
        return self.location.uri(variant, mode, "builds", build_id)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Runs one store operation, turning its failure into a `StorageError` that names
        the URI, the endpoint and the cause."""
        try:
            return fn()
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"{what}: {_cause(exc)} [{self.describe()}]") from None

    # --- publishing ------------------------------------------------------------------------

    def check(self) -> None:
        """Checks that the bucket exists and the credentials may list it.

        Raises:
            StorageError: Unreachable endpoint, missing bucket, refused credentials.
        """
        self._call(f"cannot use bucket {self.location.bucket!r}", self._check_bucket)

    def _check_bucket(self) -> None:
        if not self.fs.exists(self.location.bucket):
            raise FileNotFoundError(f"bucket {self.location.bucket!r} does not exist")
        self.fs.ls(self.location.bucket, refresh=True)  # the credentials may read it

    def upload(self, local: Path, variant: str, mode: str, build_id: str, rel: str = "") -> None:
        """Uploads a build's files (all of them, or the file or folder `rel`) under its
        build prefix. The build is not published until `commit`."""
        source = local / rel if rel else local
        paths = [source] if source.is_file() else list(_files(source))
        for path in paths:
            key = self.location.key(variant, mode, "builds", build_id, str(path.relative_to(local)))
            self._call(f"cannot upload {path.name}", partial(self.fs.put_file, str(path), key))

    def commit(self, local: Path, variant: str, mode: str, build_id: str) -> dict[str, Any]:
        """Publishes an uploaded build: checks every file is in the store with its size,
        writes `BUILD.json` (sizes and SHA-256), then points `CURRENT` at it.

        Raises:
            StorageError: A file is missing or differs in size (CURRENT left unchanged).
        """
        files = {
            str(p.relative_to(local)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
            for p in _files(local)
        }
        base = self.location.key(variant, mode, "builds", build_id)
        listed = self._call("cannot list the uploaded build", lambda: _sizes(self.fs, base))
        wrong = [rel for rel, meta in files.items() if listed.get(rel) != meta["size"]]
        if wrong:
            raise StorageError(
                f"build {build_id} is partial in the store ({len(wrong)} of {len(files)} "
                f"files missing or truncated, e.g. {wrong[0]}); CURRENT left unchanged "
                f"[{self.describe()}]"
            )
        record = {
            "build_id": build_id,
            "variant": variant,
            "mode": mode,
            "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
        }
        body = json.dumps(record, indent=1, sort_keys=True).encode()
        self._call(
            "cannot write BUILD.json", lambda: self.fs.pipe_file(f"{base}/{BUILD_FILE}", body)
        )
        current = self.location.key(variant, mode, CURRENT)
        self._call("cannot move CURRENT", lambda: self.fs.pipe_file(current, build_id.encode()))
        log.info("published build %s to %s", build_id, self.tree_uri(variant, mode))
        return record

    def publish(self, local: Path, variant: str, mode: str, build_id: str) -> dict[str, Any]:
        """`upload` then `commit`: the whole build, CURRENT moved last."""
        self.check()
        self.upload(local, variant, mode, build_id)
        return self.commit(local, variant, mode, build_id)

    # --- reading ---------------------------------------------------------------------------

    def current(self, variant: str, mode: str) -> str:
        """The build id CURRENT names.

        Raises:
            StorageError: Nothing published yet, or the store cannot be read.
        """
        key = self.location.key(variant, mode, CURRENT)

        def read() -> str:
            try:
                return bytes(self.fs.cat_file(key)).decode().strip()
            except FileNotFoundError:
                self._check_bucket()  # a missing bucket, rather than "nothing published"
                raise FileNotFoundError(
                    f"nothing published to {self.tree_uri(variant, mode)} yet (no CURRENT)"
                ) from None

        return str(self._call(f"cannot read CURRENT of {variant}/{mode}", read))

    def builds(self, variant: str, mode: str) -> list[str]:
        """Ids of the fully published builds (those with a BUILD.json), oldest first."""
        base = self.location.key(variant, mode, "builds")

        def list_builds() -> list[str]:
            found = self.fs.glob(f"{base}/*/{BUILD_FILE}", refresh=True)
            return sorted(path.rsplit("/", 2)[-2] for path in found)

        return list(self._call(f"cannot list the builds of {variant}/{mode}", list_builds))

    def build_record(self, variant: str, mode: str, build_id: str) -> dict[str, Any]:
        """The BUILD.json of a published build.

        Raises:
            StorageError: No such build, or it was never fully published.
        """
        key = self.location.key(variant, mode, "builds", build_id, BUILD_FILE)

        def read() -> dict[str, Any]:
            try:
                return dict(json.loads(self.fs.cat_file(key)))
            except FileNotFoundError:
                if self.fs.exists(self.location.key(variant, mode, "builds", build_id)):
                    raise FileNotFoundError(
                        f"build {build_id} is partial (no {BUILD_FILE}: never fully published)"
                    ) from None
                raise FileNotFoundError(f"no build {build_id!r} was published") from None

        return dict(self._call(f"cannot fetch build {build_id!r}", read))

    def fetch(self, variant: str, mode: str, version: str, cache_dir: Path) -> Path:
        """The local copy of a build, downloaded into the cache if not already there.

        Args:
            variant: MovieLens variant.
            mode: Artifacts mode.
            version: A build id, or "" / "current" for the build CURRENT names.
            cache_dir: The cache root; the build lands in `<cache_dir>/<variant>/<mode>/<id>`.

        Returns:
            The cached build directory (every file checked against BUILD.json).

        Raises:
            StorageError: The store cannot be read, the build is unknown or partial, or a
                downloaded file does not match its checksum.
        """
        build_id = self.current(variant, mode) if version in ("", CURRENT_VERSION) else version
        if "/" in build_id or build_id.startswith("."):
            raise StorageError(f"bad build id {build_id!r} [{self.describe()}]")
        target = Path(cache_dir) / variant / mode / build_id
        with _cache_lock(target):
            if _verified(target):
                log.info("build %s reused from the cache %s", build_id, target)
                self.cache_hits += 1
                return target
            record = self.build_record(variant, mode, build_id)
            staging = target.with_name(f".{build_id}.part-{os.getpid()}-{threading.get_ident()}")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                self._download(record, variant, mode, staging)
                (staging / BUILD_FILE).write_text(json.dumps(record, sort_keys=True))
                if target.exists():  # a corrupt copy: replaced by the checked one
                    shutil.rmtree(target)
                os.replace(staging, target)
                self.downloads += 1
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        log.info("build %s fetched from %s into %s", build_id, self.uri, target)
        return target

    def _download(self, record: dict[str, Any], variant: str, mode: str, out: Path) -> None:
        build_id = record["build_id"]
        base = self.location.key(variant, mode, "builds", build_id)
        for rel, meta in record["files"].items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            self._call(
                f"cannot download {rel} of build {build_id}",
                partial(self.fs.get_file, f"{base}/{rel}", str(path)),
            )
            if sha256_file(path) != meta["sha256"]:
                raise StorageError(
                    f"build {build_id}: {rel} does not match its checksum [{self.describe()}]"
                )


def _sizes(fs: Any, base: str) -> dict[str, int]:
    found = fs.find(base, detail=True, refresh=True) if fs.exists(base) else {}
    prefix = base.rstrip("/") + "/"
    return {path[len(prefix) :]: int(info.get("size", -1)) for path, info in found.items()}


def _verified(target: Path) -> bool:
    """Whether a cached build is complete and every file matches BUILD.json's checksum."""
    try:
        record = json.loads((target / BUILD_FILE).read_text())
        return all(
            (target / rel).is_file()
            and (target / rel).stat().st_size == meta["size"]
            and sha256_file(target / rel) == meta["sha256"]
            for rel, meta in record["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _cache_lock(target: Path) -> threading.Lock:
    """One fetch of a build at a time in this process (other processes race safely: each
    downloads into its own staging directory and renames)."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(target, threading.Lock())


def _cause(exc: BaseException) -> str:
    """What went wrong, in words, from an s3fs / botocore / OS error (no secrets: these
    messages carry codes, bucket and key names, never credentials)."""
    name = type(exc).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    lowered = f"{name} {text}".lower()
    if any(
        s in lowered
        for s in ("invalidaccesskeyid", "signaturedoesnotmatch", "invalidclienttokenid")
    ) or ("access denied" in lowered or isinstance(exc, PermissionError)):
        reason = "credentials refused"
    elif "nosuchbucket" in lowered or ("bucket" in lowered and "not exist" in lowered):
        reason = "bucket missing"
    elif any(s in lowered for s in ("connect", "endpoint", "timed out", "unreachable")):
        reason = "endpoint unreachable"
    elif isinstance(exc, FileNotFoundError):
        reason = "not found"
    else:
        reason = "error"
    return f"{reason}: {name}: {text[:300]}" if text else f"{reason}: {name}"


# --- the artifacts of one tree, local or in the store -----------------------------------------


@dataclass(frozen=True)
class ArtifactSource:
    """Where a replica gets the artifacts tree of one variant and mode.

    Attributes:
        artifacts_dir: The local artifacts root (the local tree, or the cache's parent).
        variant: MovieLens variant.
        mode: Artifacts mode.
        storage_uri: "" (local tree) or `s3://bucket/prefix`.
        endpoint_url: The S3-compatible endpoint (None: AWS_ENDPOINT_URL, else AWS).
        cache_dir: Where fetched builds are kept (default `<artifacts_dir>/.store-cache`).
    """

    artifacts_dir: Path
    variant: str
    mode: Mode
    storage_uri: str = ""
    endpoint_url: str | None = None
    cache_dir: Path | None = None

    @property
    def remote(self) -> bool:
        """Whether builds come from an object store."""
        return bool(self.storage_uri)

    def store(self) -> ObjectStore:
        """The object store (only when `remote`)."""
        return _object_store(self.storage_uri, self.endpoint_url)

    def pins(self, version: str) -> bool:
        """Whether `version` names one build (not the moving "current" one)."""
        return self.remote and version not in ("", CURRENT_VERSION)

    def layout(self, version: str = "") -> ArtifactLayout:
        """The tree to load: the local symlink (every version: a label), or the store's
        build `version` ("" / "current": CURRENT's) fetched into the local cache.

        Raises:
            StorageError: The build cannot be fetched.
        """
        if not self.remote:
            return ArtifactLayout.of(self.artifacts_dir, self.variant, self.mode)
        cache = self.cache_dir or Path(self.artifacts_dir) / ".store-cache"
        root = self.store().fetch(self.variant, self.mode, version, cache)
        return ArtifactLayout(root, self.variant, self.mode)


@lru_cache(maxsize=8)
def _object_store(uri: str, endpoint_url: str | None) -> ObjectStore:
    return ObjectStore(uri, endpoint_url)


_CURRENT_LAYOUTS: dict[ArtifactSource, ArtifactLayout] = {}
_CURRENT_GUARD = threading.Lock()


def current_layout(source: ArtifactSource) -> ArtifactLayout:
    """`source.layout()` resolved once per process for a remote source (the build a
    process's catalog and feature registry come from); the local tree's symlink as is."""
    if not source.remote:
        return source.layout()
    with _CURRENT_GUARD:
        if source not in _CURRENT_LAYOUTS:
            _CURRENT_LAYOUTS[source] = source.layout()
        return _CURRENT_LAYOUTS[source]
