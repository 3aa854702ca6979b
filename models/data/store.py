"""The local cache: normalized tables as parquet under `<data_dir>/<variant>/`.

Every directory is written atomically: files go to a temporary sibling directory that is
renamed over the target only once everything is written, so a failure never leaves a
partial or mixed directory behind. `manifest.json` records the source and the row counts;
a directory without it is not a cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.data.errors import DatasetError
from models.data.schema import MovieLens
from models.data.tables import normalize

MANIFEST = "manifest.json"
RAW_DIR_ENV = "MOVIEREC_RAW_DIR"
TABLES = ("ratings", "movies", "users", "tags")

ARROW_SCHEMAS: dict[str, pa.Schema] = {
    "ratings": pa.schema(
        [("user_id", pa.int64()), ("movie_id", pa.int64()), ("rating", pa.float32()),
         ("timestamp", pa.int64())]
    ),
    "movies": pa.schema(
        [("movie_id", pa.int64()), ("title", pa.string()), ("year", pa.int64()),
         ("genres", pa.list_(pa.string()))]
    ),
    "users": pa.schema(
        [("user_id", pa.int64()), ("age", pa.int64()), ("gender", pa.string()),
         ("occupation", pa.string()), ("zip_code", pa.string())]
    ),
    "tags": pa.schema(
        [("user_id", pa.int64()), ("movie_id", pa.int64()), ("tag", pa.string()),
         ("timestamp", pa.int64())]
    ),
}  # fmt: skip


def dataset_dir(data_dir: Path, variant: str) -> Path:
    """Returns the cache directory of a variant: `<data_dir>/<variant>`."""
    return data_dir / variant


def raw_dir(data_dir: Path) -> Path:
    """Returns the raw cache (archives, wheels): `$MOVIEREC_RAW_DIR` or `<data_dir>/raw`."""
    override = os.environ.get(RAW_DIR_ENV)
    return Path(override) if override else data_dir / "raw"


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yields an empty scratch directory that replaces `target` when the block succeeds.

    If the block raises, the scratch directory is deleted and `target` is left untouched.

    Args:
        target: The directory to (re)create.

    Yields:
        The scratch directory, a hidden sibling of `target`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield scratch
        scratch.chmod(0o755)
        backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
        if target.exists():
            target.replace(backup)
        try:
            scratch.replace(target)
        except OSError:
            if backup.exists():
                backup.replace(target)
            raise
        shutil.rmtree(backup, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def write_frame(frame: pd.DataFrame, path: Path, table: str | None = None) -> None:
    """Writes one table as parquet, with the schema's Arrow types when `table` is given."""
    schema = ARROW_SCHEMAS[table] if table is not None else None
    arrow = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    pq.write_table(arrow, path)


def write_dataset(dataset: MovieLens, target: Path, source: str) -> Path:
    """Writes a dataset's tables and manifest to `target`, atomically.

    Args:
        dataset: The tables.
        target: The cache directory, e.g. `<data_dir>/ml-100k`.
        source: Where the tables came from, recorded in the manifest.

    Returns:
        `target`.
    """
    counts: dict[str, int] = {}
    with atomic_directory(target) as scratch:
        for table in TABLES:
            frame = getattr(dataset, table)
            if frame is None:
                continue
            write_frame(frame, scratch / f"{table}.parquet", table)
            counts[table] = len(frame)
        manifest: dict[str, Any] = {"variant": dataset.variant, "source": source, "rows": counts}
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return target


def read_manifest(target: Path) -> dict[str, Any] | None:
    """Returns a cache directory's manifest, or None when there is no complete cache."""
    path = target / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: unreadable cache manifest ({exc}); delete {target}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("rows"), dict):
        raise DatasetError(f"{path}: malformed cache manifest; delete {target}")
    return manifest


def read_dataset(target: Path, variant: str) -> MovieLens | None:
    """Reads a cached dataset.

    Args:
        target: The cache directory.
        variant: Variant name recorded in the result.

    Returns:
        The tables, or None when `target` holds no complete cache.

    Raises:
        DatasetError: A parquet file is unreadable or its row count differs from the manifest.
    """
    manifest = read_manifest(target)
    if manifest is None:
        return None
    tables: dict[str, pd.DataFrame] = {}
    for table, rows in manifest["rows"].items():
        if table not in TABLES:
            continue
        path = target / f"{table}.parquet"
        try:
            frame = normalize(table, pd.read_parquet(path))
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            raise DatasetError(f"{path}: unreadable cache file ({exc}); delete {target}") from None
        if len(frame) != rows:
            raise DatasetError(
                f"{path}: {len(frame):,} rows but the manifest says {rows:,}; delete {target}"
            )
        tables[table] = frame
    if "ratings" not in tables or "movies" not in tables:
        raise DatasetError(f"{target / MANIFEST}: cache lacks ratings or movies; delete {target}")
    return MovieLens(
        variant=variant,
        ratings=tables["ratings"],
        movies=tables["movies"],
        users=tables.get("users"),
        tags=tables.get("tags"),
    )
