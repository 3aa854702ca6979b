"""The offline exporter: the event log, copied to parquet part files (`models.features.event_log`).

Each Events replica runs one, a consumer of the stream's own group `offline` (independent of
the applier's): every batch becomes one part file under the configured directory, written
atomically and named by its entry ids, and is acknowledged only once the file is in place (a
crash writes the same file again). `python -m models.features.event_log compact DIR` merges
the parts. With replicas on several nodes the directory must be shared storage (a network
file system mounted at the same path): a local directory would scatter the parts.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import redis.asyncio

from deployments.event_consumer import Entry, GroupConsumer
from deployments.redis_resource import RedisResource
from models.features.event_log import write_part
from movierec.events import Event, EventKeys

if TYPE_CHECKING:
    from deployments.events import EventsSettings

logger = logging.getLogger(__name__)

OFFLINE_GROUP = "offline"


class EventExporter(GroupConsumer):
    """Appends the logged events to part files under `directory`."""

    def __init__(
        self,
        keys: EventKeys,
        log: RedisResource[redis.asyncio.Redis],
        directory: Path,
        settings: EventsSettings,
    ) -> None:
        super().__init__(OFFLINE_GROUP, keys, log, settings)
        self.directory = directory

    async def handle(self, client: redis.asyncio.Redis, entries: list[Entry]) -> None:
        """Writes the batch as one part file (entries that are not events are skipped)."""
        events: list[tuple[str, Event]] = []
        for entry_id, fields in entries:
            try:
                events.append((entry_id.decode(), Event.decode(fields[b"e"])))
            except (KeyError, ValueError):
                logger.error("event log entry %s is not an event; not exported", entry_id)
        await asyncio.to_thread(write_part, self.directory, events)
