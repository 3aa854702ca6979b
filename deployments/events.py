"""Events deployment: the feedback log's writer and applier (`EventsStage`).

Why a deployment of its own (not the Features stage, not the Controller): ingestion waits
for an fsync and applying events writes to Redis, neither of which should queue behind the
hot read path of the Features stage or share its replicas' CPU; it scales on its own, and the
Controller replicas (several, on any node) stay stateless: they validate and hand over.

* `ingest(events)`: one Lua script appends the events to the tree's Redis stream (`XADD`),
  skipping those whose `event_id` is already known (`SET NX EX window` in the same script,
  so an id is marked seen exactly when its event is logged: nothing is half-applied), then
  `WAITAOF 1 0` waits until the append-only file holding them is fsynced. Only then does the
  Controller answer 202. Redis down, AOF off or the fsync late: an error (HTTP 503).
* The applier (`deployments.event_applier`): a background task in each replica, a consumer
  of the stream's consumer group, applies the logged events to the online store.

No state lives in a replica: the log, the dedup marks, the user states and the consumer
group's pending entries are all in Redis, so any replica on any node carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import redis.asyncio
from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from deployments.catalog import Catalog
from deployments.common import StageUnavailableError, health_payload
from deployments.config import ServingContext
from deployments.event_applier import EventApplier
from deployments.event_exporter import EventExporter
from deployments.features import online_features
from deployments.observability.backends import RayServeBackend
from deployments.observability.feedback import LagMetrics
from deployments.redis_resource import RedisResource, fail_fast
from models.features.event_log import compact, write_tombstone
from models.features.events import EventWeights, parse_seq
from movierec.events import (
    Event,
    EventKeys,
    ForgetResult,
    IngestResult,
    RateLimitedError,
    offline_events_dir,
)

logger = logging.getLogger(__name__)

DAY_S = 86_400

APPEND = """
local accepted, duplicates, flags = 0, 0, {}
for i = 2, #ARGV, 2 do
  local id, payload = ARGV[i], ARGV[i + 1]
  if id == '' or redis.call('SET', KEYS[2] .. id, '1', 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'e', payload)
    accepted = accepted + 1
    flags[#flags + 1] = '0'
  else
    duplicates = duplicates + 1
    flags[#flags + 1] = '1'
  end
end
return {accepted, duplicates, table.concat(flags)}
"""
"""KEYS: stream, dedup prefix; ARGV: window seconds, then (event_id or '', payload) pairs.
Answers (accepted, duplicates, one '0' (logged) or '1' (duplicate) per event).

Atomic (a script runs alone): an event_id is marked seen iff its event is in the log. The
dedup keys are derived inside the script, which a Redis Cluster would refuse: movierec uses
one Redis (or a primary with replicas)."""


RATE = """
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if n == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], 1000) end
if n > tonumber(ARGV[2]) then return redis.call('PTTL', KEYS[1]) end
return -1
"""
"""KEYS: the client's counter; ARGV: events in this request, the limit per second. Answers -1
(allowed) or the milliseconds until the client's one-second window ends."""


class EventLogUnavailableError(StageUnavailableError):
    """The events could not be logged durably (HTTP 503; the client retries)."""


class WeightsSettings(BaseModel):
    """How events move the features (`user_config.weights`; see `EventWeights`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    like_threshold: float = Field(default=4.0, ge=0.5, le=5.0)
    max_liked: int = Field(default=50, ge=1, le=1000)
    click_seeds: bool = True

    def to_weights(self) -> EventWeights:
        """The `models.features.events` form."""
        return EventWeights(self.like_threshold, self.max_liked, self.click_seeds)


class EventsSettings(BaseModel):
    """The Events deployment's `user_config`.

    Attributes:
        dedup_window_s: An event_id seen within this window is a duplicate (at least 24 h).
        durability: "aof": answer only after WAITAOF saw the log fsynced (needs appendonly
            on the Redis); "none": after the append (tests of other things, never production).
        fsync_timeout_s: WAITAOF's bound; past it the request gets 503.
        apply: Whether this deployment's replicas run the applier (and the exporter).
        batch: Stream entries an applier takes per read.
        block_s: How long an idle applier's read waits for new entries.
        claim_idle_s: Entries another consumer took and left unacknowledged this long (it
            died) are claimed and applied.
        retention_s: Raw events older than this are trimmed from the log.
        rate_limit_per_s: Events one client (API key; without auth: everyone) may post per
            second, across every replica; past it HTTP 429 with `Retry-After`. 0: no limit.
        export: Whether the replicas also copy the log to parquet part files (with `apply`).
        offline_dir: Where the part files go (shared storage with replicas on several
            nodes); None: `<run_dir>/events/<namespace>`.
        weights: How events move the features.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    dedup_window_s: int = Field(default=7 * DAY_S, ge=DAY_S, le=365 * DAY_S)
    durability: Literal["aof", "none"] = "aof"
    fsync_timeout_s: float = Field(default=2.0, gt=0.0, le=30.0)
    apply: bool = True
    batch: int = Field(default=500, ge=1, le=10_000)
    block_s: float = Field(default=0.05, gt=0.0, le=5.0)
    claim_idle_s: float = Field(default=30.0, ge=1.0, le=3600.0)
    retention_s: int = Field(default=30 * DAY_S, ge=DAY_S, le=3650 * DAY_S)
    rate_limit_per_s: int = Field(default=5000, ge=0, le=10_000_000)
    export: bool = True
    offline_dir: Path | None = None
    weights: WeightsSettings = WeightsSettings()


async def ping(client: redis.asyncio.Redis) -> bool:
    """Whether Redis answers (the event log's probe)."""
    return bool(await client.ping())  # type: ignore[misc]


def event_log(context: ServingContext) -> RedisResource[redis.asyncio.Redis]:
    """A replica's binary Redis client for the event log, reconnecting after restarts."""

    reachable = ping

    async def open_client(url: str) -> redis.asyncio.Redis:
        client = redis.asyncio.Redis.from_url(
            url, decode_responses=False, socket_timeout=10.0, socket_connect_timeout=2.0
        )
        return fail_fast(client)

    async def close(client: redis.asyncio.Redis) -> None:
        await client.aclose()

    return RedisResource(
        "event log",
        context.resolve_redis_url,
        open_client,
        reachable,
        missing="Redis does not answer",
        close=close,
    )


@serve.deployment
class Events:
    """Logs feedback events durably and applies them to the online store (`EventsStage`)."""

    def __init__(self, context: ServingContext) -> None:
        """Loads the catalog's genres (the genre affinity feature).

        Args:
            context: The artifacts tree (its namespace names the event keys).
        """
        catalog = Catalog.load(context.layout.catalog_dir)
        movie_genres = {movie_id: movie.genres for movie_id, movie in catalog.movies.items()}
        self._keys = EventKeys(context.layout.namespace)
        self._settings = EventsSettings()
        self._log = event_log(context)
        self._lag = LagMetrics(RayServeBackend())
        self._applier = EventApplier(
            self._keys,
            self._log,
            online_features(context),
            movie_genres,
            self._settings,
            on_applied=self._lag.observe,
        )
        self._exporter = EventExporter(
            self._keys,
            self._log,
            offline_events_dir(context.run_dir, context.layout.namespace),
            self._settings,
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`EventsSettings`); starts or stops the applier."""
        self._settings = EventsSettings.model_validate(config or {})
        self._applier.configure(self._settings)
        self._exporter.configure(self._settings)
        if self._settings.offline_dir is not None:
            self._exporter.directory = self._settings.offline_dir
        if self._settings.apply and not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self._applier.run())]
            if self._settings.export:
                self._tasks.append(loop.create_task(self._exporter.run()))
        elif not self._settings.apply and self._tasks:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks = []

    async def ingest(self, events: Sequence[Event], client_id: str = "anonymous") -> IngestResult:
        """Logs `events` (deduplicated by event_id) and waits until they are durable.

        Args:
            events: Validated events.
            client_id: Who posts them (a digest of the API key), for the rate limit.

        Raises:
            RateLimitedError: The client is over `rate_limit_per_s`.
            EventLogUnavailableError: Redis is down, or the log could not be fsynced.
        """
        if not events:
            return IngestResult(0, 0)
        await self._check_rate(client_id, len(events))
        args: list[Any] = [self._settings.dedup_window_s]
        for event in events:
            args += [event.event_id or "", event.encode()]
        try:
            async with self._log.use() as client:
                accepted, duplicates, flags = await client.eval(  # type: ignore[misc]
                    APPEND, 2, self._keys.stream, self._keys.dedup_prefix, *args
                )
                if self._settings.durability == "aof":
                    await self._wait_fsynced(client)
        except EventLogUnavailableError:
            raise
        except Exception as exc:
            raise EventLogUnavailableError(f"event log unavailable: {exc}") from None
        repeated = tuple(i for i, flag in enumerate(bytes(flags or b"")) if flag == ord("1"))
        return IngestResult(int(accepted), int(duplicates), repeated)

    async def _check_rate(self, client_id: str, n: int) -> None:
        limit = self._settings.rate_limit_per_s
        if limit <= 0:
            return
        try:
            async with self._log.use() as client:
                wait_ms = await client.eval(  # type: ignore[misc]
                    RATE, 1, self._keys.rate(client_id), n, limit
                )
        except Exception as exc:
            raise EventLogUnavailableError(f"event log unavailable: {exc}") from None
        if int(wait_ms) >= 0:
            raise RateLimitedError(max(1, math.ceil(int(wait_ms) / 1000)))

    async def forget(self, user_id: int) -> ForgetResult:
        """Removes the user's events and event-driven online features (`DELETE
        /users/{user_id}/events`), and their events from the offline part files.

        Raises:
            StageUnavailableError: Redis (or the online store) cannot be reached.
        """
        entries, movies = await self._applier.forget(int(user_id))
        await self._forget_offline(int(user_id))
        return ForgetResult(entries, movies)

    async def _forget_offline(self, user_id: int) -> None:
        """The offline half of a deletion: a tombstone covering every entry logged so far
        (the log's last id, or Redis's clock if later), which every reader of the part files
        honours (a full build's fold-in too), then a compaction that drops the user's events
        from the files. A compaction that fails (another replica compacting at the same
        time) is only logged: the tombstone already hides the events."""
        directory = self._exporter.directory
        try:
            async with self._log.use() as client:
                seconds, micros = await client.time()
                until = (int(seconds) * 1000 + int(micros) // 1000, 0)
                with contextlib.suppress(redis.exceptions.ResponseError):  # no log yet
                    info = await client.xinfo_stream(self._keys.stream)
                    until = max(until, parse_seq(info["last-generated-id"]))
        except Exception as exc:
            raise EventLogUnavailableError(f"event log unavailable: {exc}") from None
        await asyncio.to_thread(write_tombstone, directory, user_id, f"{until[0]}-{until[1]}")
        try:
            await asyncio.to_thread(compact, directory)
        except (OSError, ValueError) as exc:
            logger.warning("compacting %s after deleting user %s: %s", directory, user_id, exc)

    async def _wait_fsynced(self, client: redis.asyncio.Redis) -> None:
        timeout_ms = max(1, int(self._settings.fsync_timeout_s * 1000))
        try:
            local, _ = await client.execute_command("WAITAOF", 1, 0, timeout_ms)
        except redis.exceptions.ResponseError as exc:  # appendonly off
            logger.error("WAITAOF refused (%s): enable appendonly on the Redis", exc)
            raise EventLogUnavailableError("the event log is not durable (AOF off)") from None
        if int(local) < 1:
            raise EventLogUnavailableError("the event log was not fsynced in time")

    async def health(self) -> dict[str, Any]:
        """Redis answers; the applier's and the exporter's progress."""
        _, problem = await self._log.probe(ping)
        detail = {"applier": self._applier.describe(), "exporter": self._exporter.describe()}
        if problem is not None:
            return health_payload("unavailable", error=problem, **detail)
        return health_payload("ok", **detail)

    async def check_health(self) -> None:
        """Serve's periodic check (reconnects an idle replica after a Redis restart)."""
        await self._log.check_health(ping)

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()


__all__ = ["EventLogUnavailableError", "Events", "EventsSettings"]
