"""Verifying downloaded files against pinned sizes and SHA-256 digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from models.data.errors import ChecksumError

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Returns the hex SHA-256 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str, size: int | None = None, label: str | None = None) -> None:
    """Checks a file's SHA-256 digest (and size, where known).

    Args:
        path: The file to check.
        sha256: Expected hex digest.
        size: Expected size in bytes, or None to skip the size check.
        label: What the file is (e.g. its URL), added to the message.

    Raises:
        ChecksumError: The digest or size differs; the message names the file and shows the
            expected and actual values.
    """
    actual = sha256_file(path)
    actual_size = path.stat().st_size
    if actual == sha256.lower() and (size is None or actual_size == size):
        return
    what = f"{path} ({label})" if label else str(path)
    sizes = f"; size expected {size:,} bytes, got {actual_size:,}" if size is not None else ""
    raise ChecksumError(
        f"checksum mismatch for {what}: expected sha256 {sha256.lower()}, got {actual}{sizes}"
    )
