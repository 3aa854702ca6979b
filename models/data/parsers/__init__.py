"""Parsers for every MovieLens file layout, and detection of the layout of a directory."""

from __future__ import annotations

from pathlib import Path

from models.data.errors import DatasetError
from models.data.parsers import atomic, classic, csv_layout, dat
from models.data.schema import MovieLens
from models.data.variants import Layout

__all__ = ["detect_layout", "layout_files", "parse_directory"]


def layout_files(layout: Layout, prefix: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Returns (required, optional) file names of a layout.

    Args:
        layout: The layout.
        prefix: Dataset name used by RecBole atomic file names, e.g. "ml-100k".
    """
    if layout is Layout.CLASSIC:
        return classic.REQUIRED_FILES, classic.OPTIONAL_FILES
    if layout is Layout.DAT:
        return dat.REQUIRED_FILES, dat.OPTIONAL_FILES
    if layout is Layout.CSV:
        return csv_layout.REQUIRED_FILES, csv_layout.OPTIONAL_FILES
    return atomic.required_files(prefix), atomic.optional_files(prefix)


def detect_layout(directory: Path, prefix: str) -> tuple[Layout, str]:
    """Finds which layout the files in `directory` use.

    Args:
        directory: A directory of raw MovieLens files.
        prefix: Preferred RecBole dataset name (the variant), e.g. "ml-100k".

    Returns:
        (layout, prefix); prefix is the RecBole dataset name actually found for the atomic
        layout and `prefix` unchanged otherwise.

    Raises:
        DatasetError: No known ratings file is present; the message lists what was looked for.
    """
    markers = (
        (classic.RATINGS_FILE, Layout.CLASSIC),
        (dat.RATINGS_FILE, Layout.DAT),
        (csv_layout.RATINGS_FILE, Layout.CSV),
    )
    for name, layout in markers:
        if (directory / name).is_file():
            return layout, prefix
    if (directory / (prefix + atomic.INTER_SUFFIX)).is_file():
        return Layout.ATOMIC, prefix
    found = atomic.find_prefix(directory)
    if found is not None:
        return Layout.ATOMIC, found
    raise DatasetError(
        f"no MovieLens ratings file in {directory}: looked for {classic.RATINGS_FILE} (ml-100k),"
        f" {dat.RATINGS_FILE} (ml-1m), {csv_layout.RATINGS_FILE} (ml-latest-small, ml-25m)"
        f" and {prefix}{atomic.INTER_SUFFIX} (RecBole atomic files)"
    )


def parse_directory(directory: Path, variant: str, layout: Layout | None = None) -> MovieLens:
    """Parses the raw files of one variant.

    Args:
        directory: Directory holding the raw files.
        variant: Variant name recorded in the result (and RecBole's dataset name).
        layout: The files' layout; detected from the file names when None.

    Returns:
        The normalized tables.

    Raises:
        DatasetError: The layout cannot be detected, or a file is missing or malformed.
    """
    prefix = variant
    if layout is None:
        layout, prefix = detect_layout(directory, variant)
    if layout is Layout.CLASSIC:
        return classic.parse_classic(directory, variant)
    if layout is Layout.DAT:
        return dat.parse_dat(directory, variant)
    if layout is Layout.CSV:
        return csv_layout.parse_csv(directory, variant)
    return atomic.parse_atomic(directory, prefix, variant)
