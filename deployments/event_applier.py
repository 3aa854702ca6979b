"""The applier: logged events -> the user's online features, through Feast.

Each Events replica runs one, a consumer of the stream's group `appliers` (the loop, the
claiming of a dead replica's entries and the acknowledgement are `deployments.event_consumer`'s).
For each user of a batch, under a short per-user lock (several replicas), it folds the events
into the user's state hash (idempotent: every part of a movie's state carries the stream
position that set it), computes the features from the user's base row
(`models.features.events.fold_features`) and writes them to the online store
(`models.features.event_store.write_rows`); the loop then acknowledges the entries.

An event acknowledged by `POST /events` is in the log; the log entry is acknowledged in the
group only once applied, so a crash (of a replica, or of Redis) at any point leaves it to be
applied again, which changes nothing if it already was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis.asyncio

from deployments.event_consumer import Entry, GroupConsumer
from deployments.redis_resource import RedisResource
from models.features.events import BaseFeatures, MovieState, fold_features, parse_seq
from movierec.events import Event, EventKeys

if TYPE_CHECKING:
    from deployments.events import EventsSettings
    from models.features.runtime import OnlineFeatures

logger = logging.getLogger(__name__)

STAMP_FIELD = b"_stamp"
LOCK_TTL_MS = 5_000
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

LagObserver = Callable[[Event, float], None]


class EventApplier(GroupConsumer):
    """Applies the event log to the online store (one per Events replica)."""

    def __init__(
        self,
        keys: EventKeys,
        log: RedisResource[redis.asyncio.Redis],
        store: RedisResource[OnlineFeatures],
        movie_genres: Mapping[int, Sequence[str]],
        settings: EventsSettings,
        on_applied: LagObserver | None = None,
    ) -> None:
        self._store = store
        self._genres = movie_genres
        self._on_applied = on_applied
        super().__init__(keys.group, keys, log, settings)

    def configure(self, settings: EventsSettings) -> None:
        """Applies new settings (the next batch uses them)."""
        super().configure(settings)
        self._weights = settings.weights.to_weights()

    @property
    def applied(self) -> int:
        """Log entries applied by this replica."""
        return self.handled

    async def handle(self, client: redis.asyncio.Redis, entries: list[Entry]) -> None:
        """Applies a batch (acknowledged by the loop once applied)."""
        await self._apply(client, entries)

    async def _apply(self, client: redis.asyncio.Redis, entries: list[Entry]) -> None:
        by_user: dict[int, list[tuple[Event, bytes]]] = defaultdict(list)
        for entry_id, fields in entries:
            try:
                event = Event.decode(fields[b"e"])
            except (KeyError, ValueError):
                logger.error("event log entry %s is not an event; skipped", entry_id)
                continue
            by_user[event.user_id].append((event, entry_id))
        async with self._store.use() as reader:
            for user_id, events in by_user.items():
                await self._apply_user(client, reader, user_id, events)

    async def _apply_user(
        self,
        client: redis.asyncio.Redis,
        reader: OnlineFeatures,
        user_id: int,
        events: list[tuple[Event, bytes]],
    ) -> None:
        from models.features.event_store import next_stamp, write_rows

        async with self._locked(client, user_id):
            state_key = self._keys.state(user_id)
            stored = await client.hgetall(state_key)  # type: ignore[misc]
            states = {
                int(field): MovieState.decode(value)
                for field, value in stored.items()
                if field != STAMP_FIELD
            }
            changed: dict[int, MovieState] = {}
            for event, entry_id in events:
                before = changed.get(event.movie_id) or states.get(event.movie_id) or MovieState()
                after = before.apply(event, parse_seq(entry_id), entry_id.decode())
                if after != before:
                    changed[event.movie_id] = after
            base = await self._base(client, reader, user_id)
            states.update(changed)
            previous = stored.get(STAMP_FIELD)
            stamp = next_stamp(
                None if previous is None else datetime.fromisoformat(previous.decode())
            )
            rows = fold_features(base, states, self._genres, self._weights)
            await write_rows(reader, user_id, rows, stamp)
            update: dict[Any, Any] = {m: s.encode() for m, s in changed.items()}
            update[STAMP_FIELD] = stamp.isoformat()
            await client.hset(state_key, mapping=update)  # type: ignore[misc]
            await client.sadd(self._keys.users, user_id)  # type: ignore[misc]
        if self._on_applied is not None:
            now = time.time()
            for event, _ in events:
                self._on_applied(event, now - event.received)

    @contextlib.asynccontextmanager
    async def _locked(self, client: redis.asyncio.Redis, user_id: int) -> AsyncIterator[None]:
        """The user's short lock: one applier (or deletion) at a time changes their features."""
        lock, token = self._keys.lock(user_id), uuid.uuid4().hex
        while not await client.set(lock, token, nx=True, px=LOCK_TTL_MS):
            await asyncio.sleep(0.01)
        try:
            yield
        finally:
            await client.eval(RELEASE, 1, lock, token)  # type: ignore[misc]

    async def forget(self, user_id: int) -> tuple[int, int]:
        """Removes the user's events: their log entries, event state and event-driven online
        features (back to the build's row, or none for a user the build did not know).

        Returns:
            (log entries deleted, movies in the event state removed).
        """
        from models.features.event_store import next_stamp, user_row_fields, write_rows

        async with self._log.use() as client, self._store.use() as reader:
            entries = await self._delete_entries(client, user_id)
            async with self._locked(client, user_id):
                state_key, base_key = self._keys.state(user_id), self._keys.base(user_id)
                fields = await client.hkeys(state_key)  # type: ignore[misc]
                movies = sum(1 for field in fields if field != STAMP_FIELD)
                previous = await client.hget(state_key, STAMP_FIELD)  # type: ignore[misc, arg-type]
                stored = await client.get(base_key)
                if stored is not None:
                    base = BaseFeatures.decode(stored)
                    if base.seen or base.rating_count:
                        rows = fold_features(base, {}, self._genres, self._weights)
                        last = (
                            None if previous is None else datetime.fromisoformat(previous.decode())
                        )
                        await write_rows(reader, user_id, rows, next_stamp(last))
                    else:
                        key, fields = user_row_fields(reader, user_id)
                        await client.hdel(key, *fields)  # type: ignore[misc, arg-type]
                await client.delete(state_key, base_key)
                await client.srem(self._keys.users, user_id)  # type: ignore[misc]
        return entries, movies

    async def _delete_entries(self, client: redis.asyncio.Redis, user_id: int) -> int:
        """Deletes the user's entries from the event log (a scan of the retained log)."""
        deleted, start = 0, "-"
        while True:
            chunk = await client.xrange(self._keys.stream, min=start, count=1000)
            if not chunk:
                return deleted
            mine = []
            for entry_id, fields in chunk:
                try:
                    if Event.decode(fields[b"e"]).user_id == user_id:
                        mine.append(entry_id)
                except (KeyError, ValueError):
                    continue
            if mine:
                await client.xack(self._keys.stream, self._keys.group, *mine)
                deleted += await client.xdel(self._keys.stream, *mine)
            if len(chunk) < 1000:
                return deleted
            start = "(" + chunk[-1][0].decode()

    async def _base(
        self, client: redis.asyncio.Redis, reader: OnlineFeatures, user_id: int
    ) -> BaseFeatures:
        """The user's features before their first event (read from the store once)."""
        from models.features.event_store import read_base

        key = self._keys.base(user_id)
        stored = await client.get(key)
        if stored is not None:
            return BaseFeatures.decode(stored)
        base = await read_base(reader, user_id)
        await client.set(key, base.encode(), nx=True)
        return BaseFeatures.decode(await client.get(key) or base.encode())
