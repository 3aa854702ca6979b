"""A consumer of the event log's stream in one consumer group, run by every Events replica.

The loop both readers of the log share (the applier, `deployments.event_applier`, and the
offline exporter, `deployments.event_exporter`), each in its own group so each sees every
entry once:

1. on (re)connection it first re-reads the entries it had taken but not acknowledged (e.g.
   Redis restarted from its AOF in the middle of a batch), then reads new ones;
2. when idle, at most every second, it claims the entries another consumer left pending for
   `claim_idle_s` (that replica died) and trims the log to `retention_s`;
3. `handle` processes a batch and acknowledges it: an entry is acknowledged only once done,
   so a crash at any point leaves it to be processed again.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import os
import socket
import time
import uuid
from typing import TYPE_CHECKING, Any

import redis.asyncio

from deployments.common import describe
from deployments.redis_resource import RedisResource
from movierec.events import EventKeys

if TYPE_CHECKING:
    from deployments.events import EventsSettings

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]


class GroupConsumer(abc.ABC):
    """Reads the event log as one consumer of `group` until cancelled."""

    def __init__(
        self,
        group: str,
        keys: EventKeys,
        log: RedisResource[redis.asyncio.Redis],
        settings: EventsSettings,
    ) -> None:
        self.group = group
        self._keys = keys
        self._log = log
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.configure(settings)
        self.handled = 0
        self.batches = 0
        self.last_error: str | None = None
        self._last_claim = 0.0

    def configure(self, settings: EventsSettings) -> None:
        """Applies new settings (the next batch uses them)."""
        self._settings = settings

    def describe(self) -> dict[str, Any]:
        """Progress, for `/healthz`."""
        return {
            "consumer": self.consumer,
            "entries": self.handled,
            "batches": self.batches,
            "error": self.last_error,
        }

    @abc.abstractmethod
    async def handle(self, client: redis.asyncio.Redis, entries: list[Entry]) -> None:
        """Processes a batch of entries (then they are acknowledged)."""

    async def run(self) -> None:
        """Consumes the log until cancelled; a failure (Redis down) is retried every 0.5 s."""
        own_pending = True
        while True:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # redis-py may swallow a cancellation (it retries the interrupted command)
                raise asyncio.CancelledError
            try:
                async with self._log.use() as client:
                    await self._ensure_group(client)
                    entries = await self._read(client, "0" if own_pending else ">")
                    if own_pending and not entries:
                        own_pending = False
                        continue
                    if not entries and time.monotonic() - self._last_claim > 1.0:
                        entries = await self._claim(client)
                    if entries:
                        await self.handle(client, entries)
                        await client.xack(self._keys.stream, self.group, *(e for e, _ in entries))
                        self.handled += len(entries)
                        self.batches += 1
                self.last_error = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # redis-py can turn a cancellation mid-command into a connection error
                    raise asyncio.CancelledError from None
                own_pending = True  # Redis may have restarted: our pending entries first
                if self.last_error != describe(exc):
                    logger.warning("event log consumer %s: %s", self.group, describe(exc))
                self.last_error = describe(exc)
                await asyncio.sleep(0.5)

    async def _ensure_group(self, client: redis.asyncio.Redis) -> None:
        try:
            await client.xgroup_create(self._keys.stream, self.group, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self, client: redis.asyncio.Redis, start: str) -> list[Entry]:
        block = None if start == "0" else max(1, int(self._settings.block_s * 1000))
        answer = await client.xreadgroup(
            self.group,
            self.consumer,
            {self._keys.stream: start},
            count=self._settings.batch,
            block=block,
        )
        if not answer:
            return []
        entries: list[Entry] = answer[0][1]
        return [(entry_id, fields) for entry_id, fields in entries if fields]

    async def _claim(self, client: redis.asyncio.Redis) -> list[Entry]:
        """Entries a dead consumer left pending; also trims the log to the retention."""
        self._last_claim = time.monotonic()
        oldest_ms = int((time.time() - self._settings.retention_s) * 1000)
        await client.xtrim(self._keys.stream, minid=f"{oldest_ms}-0", approximate=True)
        answer = await client.xautoclaim(
            self._keys.stream,
            self.group,
            self.consumer,
            min_idle_time=int(self._settings.claim_idle_s * 1000),
            start_id="0-0",
            count=self._settings.batch,
        )
        return [(entry_id, fields) for entry_id, fields in answer[1] if fields]
