"""The offline copy of the event log: parquet part files under a directory, compacted.

Feast's dask offline store rewrites the whole parquet file on every offline push (not atomic,
racy across replicas), so events are not pushed offline one by one. Instead a writer appends
each batch as its own part file, named by the batch's first and last stream entry ids (a batch
written twice after a crash replaces its own file), written to a temporary name and renamed
into place (readers never see half a file); `compact` merges the parts into one file,
dropping entries seen twice. Readers (`read_events`: the offline build) read every `*.parquet`
of the directory.

A deletion (`DELETE /users/{id}/events`) leaves a tombstone, `deleted/user-<id>-<entry>.json`:
the user's entries up to and including that stream entry are gone for every reader
(`read_events` drops them, `compact` leaves them out), even entries an exporter writes after
the deletion (it may lag the log). Tombstones are kept: they are tiny, and a late part file
may still hold older entries of the user.

Columns: `entry_id` (the stream entry, unique), `user_id`, `movie_id`, `type`, `value`
(null but for ratings), `event_timestamp` (the client's time, UTC), `received` (UTC).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from movierec.events import Event

SCHEMA = pa.schema(
    [
        ("entry_id", pa.string()),
        ("user_id", pa.int64()),
        ("movie_id", pa.int64()),
        ("type", pa.string()),
        ("value", pa.float64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("received", pa.timestamp("us", tz="UTC")),
    ]
)
PART_PREFIX = "part-"
COMPACTED_PREFIX = "compacted-"
TOMBSTONES = "deleted"
"""The subdirectory of the tombstones (JSON, not read as events)."""


def entry_position(entry_id: str) -> tuple[int, int]:
    """The order of a stream entry id ("1733097000000-3" -> (1733097000000, 3))."""
    ms, _, n = entry_id.partition("-")
    return int(ms), int(n or 0)


def _table(entries: Sequence[tuple[str, Event]]) -> pa.Table:
    def stamp(seconds: float) -> pd.Timestamp:
        return pd.Timestamp(seconds, unit="s", tz="UTC")

    return pa.table(
        {
            "entry_id": [entry_id for entry_id, _ in entries],
            "user_id": [e.user_id for _, e in entries],
            "movie_id": [e.movie_id for _, e in entries],
            "type": [e.type for _, e in entries],
            "value": [e.value for _, e in entries],
            "event_timestamp": [stamp(e.timestamp) for _, e in entries],
            "received": [stamp(e.received) for _, e in entries],
        },
        schema=SCHEMA,
    )


def _write_atomically(table: pa.Table, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def write_part(directory: Path, entries: Sequence[tuple[str, Event]]) -> Path | None:
    """Appends one batch of logged events as a part file; None for an empty batch."""
    if not entries:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    first, last = entries[0][0], entries[-1][0]
    path = directory / f"{PART_PREFIX}{first}_{last}.parquet"
    _write_atomically(_table(entries), path)
    return path


def write_tombstone(directory: Path, user_id: int, until_entry: str) -> Path:
    """Records that the user's entries up to `until_entry` (a stream entry id) are deleted."""
    entry_position(until_entry)  # ValueError for a malformed id, before anything is written
    folder = directory / TOMBSTONES
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"user-{int(user_id)}-{until_entry}.json"
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(json.dumps({"user_id": int(user_id), "until": until_entry}))
    os.replace(temporary, path)
    return path


def tombstones(directory: Path) -> dict[int, tuple[int, int]]:
    """User id -> the last deleted stream position of that user (the latest tombstone)."""
    out: dict[int, tuple[int, int]] = {}
    folder = directory / TOMBSTONES
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(path.read_text())
        user, until = int(record["user_id"]), entry_position(str(record["until"]))
        out[user] = max(out.get(user, until), until)
    return out


def _read_once(directory: Path) -> pd.DataFrame:
    files = sorted(directory.glob("*.parquet")) if directory.exists() else []
    tables = [pq.read_table(f, schema=SCHEMA).to_pandas() for f in files]
    return pd.concat(tables) if tables else SCHEMA.empty_table().to_pandas()


def _read_files(directory: Path, attempts: int = 5) -> pd.DataFrame:
    """Every row of the directory's parquet files. A file that vanishes while being read was
    merged by a concurrent compaction, whose file is in place before it deletes the parts:
    the directory is listed and read again."""
    for _ in range(attempts - 1):
        try:
            return _read_once(directory)
        except FileNotFoundError:
            continue
    return _read_once(directory)


def read_events(directory: Path) -> pd.DataFrame:
    """Every event of the directory (parts and compacted files), each entry once, in log
    order, without the entries a tombstone deleted."""
    frame = _read_files(directory)
    if frame.empty:
        return frame.reset_index(drop=True)
    order = frame["entry_id"].str.split("-", expand=True).astype("int64")
    frame = frame.assign(_ms=order[0], _n=order[1]).sort_values(["_ms", "_n"], kind="stable")
    frame = frame.drop_duplicates("entry_id")
    deleted = tombstones(directory)
    if deleted:
        until = pd.DataFrame(
            [(user, ms, n) for user, (ms, n) in deleted.items()],
            columns=["user_id", "_u_ms", "_u_n"],
        )
        marked = frame.merge(until, on="user_id", how="left")
        gone = marked["_u_ms"].notna() & (
            (marked["_ms"] < marked["_u_ms"])
            | ((marked["_ms"] == marked["_u_ms"]) & (marked["_n"] <= marked["_u_n"]))
        )
        frame = frame[~gone.to_numpy()]
    frame = frame.drop(columns=["_ms", "_n"])
    return frame.reset_index(drop=True)


def compact(directory: Path, drop_users: Sequence[int] = ()) -> Path | None:
    """Merges every file of the directory into one, without duplicates (and without the
    events of `drop_users`: a deletion); None when there is nothing to compact."""
    files = sorted(directory.glob("*.parquet")) if directory.exists() else []
    if not files:
        return None
    frame = read_events(directory)
    if drop_users:
        frame = frame[~frame["user_id"].isin([int(u) for u in drop_users])]
    last = frame["entry_id"].iloc[-1] if len(frame) else "0-0"
    path = directory / f"{COMPACTED_PREFIX}{last}-{uuid.uuid4().hex[:8]}.parquet"
    _write_atomically(pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False), path)
    for old in files:
        if old != path:
            old.unlink(missing_ok=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m models.features.event_log compact DIR [--drop-user ID ...]`."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser("compact", help="merge the part files of DIR into one")
    merge.add_argument("directory", type=Path)
    merge.add_argument("--drop-user", type=int, action="append", default=[])
    args = parser.parse_args(argv)
    path = compact(args.directory, args.drop_user)
    print(path if path is not None else f"nothing to compact in {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
