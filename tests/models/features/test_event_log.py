"""The offline copy of the event log: part files and compaction (pure files, no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.features.event_log import compact, read_events, write_part
from movierec.events import Event


def _entries(start: int, n: int, user_id: int = 1) -> list[tuple[str, Event]]:
    return [
        (f"{start + i}-0", Event(user_id, 10 + i, "rating", 4.0, 1.7e9 + i, 1.8e9 + i))
        for i in range(n)
    ]


def test_parts_are_read_in_log_order_once_and_compacted(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    assert read_events(directory).empty and compact(directory) is None
    write_part(directory, _entries(200, 2))
    write_part(directory, _entries(100, 3, user_id=2))
    write_part(directory, _entries(100, 3, user_id=2))  # the same batch again: same file
    assert len(list(directory.glob("*.parquet"))) == 2
    frame = read_events(directory)
    assert frame["entry_id"].tolist() == ["100-0", "101-0", "102-0", "200-0", "201-0"]
    assert str(frame["event_timestamp"].dt.tz) == "UTC"
    write_part(directory, _entries(201, 2))  # overlaps the first part: deduplicated
    compacted = compact(directory)
    assert compacted is not None and list(directory.glob("*.parquet")) == [compacted]
    assert read_events(directory)["entry_id"].tolist() == [
        "100-0", "101-0", "102-0", "200-0", "201-0", "202-0",
    ]  # fmt: skip


def test_compaction_can_drop_a_users_events(tmp_path: Path) -> None:
    write_part(tmp_path, _entries(1, 2, user_id=7) + _entries(5, 1, user_id=8))
    compact(tmp_path, drop_users=[7])
    assert read_events(tmp_path)["user_id"].tolist() == [8]
    compact(tmp_path, drop_users=[8])  # nothing left: an empty file, read as no events
    assert read_events(tmp_path).empty


def test_the_cli_compacts(tmp_path: Path, capsys: object) -> None:
    from models.features.event_log import main

    write_part(tmp_path, _entries(1, 2))
    write_part(tmp_path, _entries(3, 2))
    assert main(["compact", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.parquet"))) == 1 and len(read_events(tmp_path)) == 4


def test_a_tombstone_deletes_a_users_entries_up_to_it_for_every_reader(tmp_path: Path) -> None:
    from models.features.event_log import tombstones, write_tombstone

    write_part(tmp_path, _entries(1, 2, user_id=7) + _entries(5, 1, user_id=8))
    write_tombstone(tmp_path, 7, "2-0")
    write_tombstone(tmp_path, 7, "1-0")  # an older deletion: the latest one counts
    assert tombstones(tmp_path) == {7: (2, 0)}
    write_part(tmp_path, [("1-5", Event(7, 99, "watch", None, 1.7e9, 1.8e9))])  # late export
    write_part(tmp_path, _entries(9, 1, user_id=7))  # posted after the deletion: kept
    assert read_events(tmp_path)["entry_id"].tolist() == ["5-0", "9-0"]
    compacted = compact(tmp_path)
    assert compacted is not None and list(tmp_path.glob("*.parquet")) == [compacted]
    assert read_events(tmp_path)["entry_id"].tolist() == ["5-0", "9-0"]
    assert tombstones(tmp_path) == {7: (2, 0)}  # kept after compaction


def test_a_part_merged_away_while_reading_is_read_from_the_compacted_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import models.features.event_log as event_log

    write_part(tmp_path, _entries(1, 2))
    write_part(tmp_path, _entries(3, 2))
    real = event_log.pq.read_table
    calls = {"n": 0}

    def compacting_meanwhile(path: Path, **kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # a concurrent compaction merges the parts under the reader
            compact(tmp_path)
            raise FileNotFoundError(path)
        return real(path, **kw)

    monkeypatch.setattr(event_log.pq, "read_table", compacting_meanwhile)
    assert read_events(tmp_path)["entry_id"].tolist() == ["1-0", "2-0", "3-0", "4-0"]
