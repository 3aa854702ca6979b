"""Fetching a variant's GroupLens archive into the raw cache, verified against its checksum."""

from __future__ import annotations

import logging
from pathlib import Path

from models.data.checksums import verify_file
from models.data.download import download
from models.data.errors import DatasetError
from models.data.variants import Variant

logger = logging.getLogger(__name__)


def archive_path(raw_dir: Path, variant: Variant) -> Path:
    """Returns where the raw cache keeps a variant's archive: `<raw_dir>/<variant>.zip`."""
    return raw_dir / f"{variant.name}.zip"


def verify_archive(path: Path, variant: Variant, allow_unverified: bool = False) -> None:
    """Checks an archive against the variant's pinned checksum.

    Args:
        path: The archive.
        variant: Its variant.
        allow_unverified: Accept the archive when the variant has no pinned checksum.

    Raises:
        ChecksumError: The digest or size differs from the pinned one.
        DatasetError: No checksum is pinned and `allow_unverified` is False.
    """
    archive = variant.archive
    if archive.sha256 is None:
        if not allow_unverified:
            raise DatasetError(
                f"no checksum is known for {variant.name}, so {path} cannot be verified;"
                " pass --allow-unverified (allow_unverified=True) to trust it anyway"
            )
        logger.warning("using %s without checksum verification", path)
        return
    verify_file(path, archive.sha256, archive.size, label=archive.url)


def fetch_archive(raw_dir: Path, variant: Variant, allow_unverified: bool = False) -> Path:
    """Returns the variant's verified archive, downloading it from GroupLens if not cached.

    Args:
        raw_dir: The raw cache directory.
        variant: The variant.
        allow_unverified: Accept an archive for which no checksum is pinned.

    Returns:
        Path of the archive in the raw cache.

    Raises:
        SourceUnavailableError: GroupLens cannot be reached.
        ChecksumError: The cached or downloaded archive fails verification (a failed
            download is deleted; a cached one is left for the user to inspect).
        DatasetError: No checksum is pinned and `allow_unverified` is False.
    """
    path = archive_path(raw_dir, variant)
    if path.is_file():
        verify_archive(path, variant, allow_unverified)
        return path
    if variant.archive.sha256 is None and not allow_unverified:
        verify_archive(path, variant, allow_unverified)  # raises before downloading
    return download(
        variant.archive.url, path, lambda part: verify_archive(part, variant, allow_unverified)
    )
