"""Feedback events: the record that travels from `POST /events` to the event log and back.

The Controller validates a request into `Event`s; the Events deployment appends them to a
Redis stream (the event log, one per artifacts tree) and applies them to the user's online
features. This module holds what both sides and the offline tools share: the event record,
its compact encoding in a stream entry, and the Redis key names of one tree's event data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

EventType = Literal["rating", "watch", "click", "impression", "dismiss"]
EVENT_TYPES: Final[tuple[EventType, ...]] = ("rating", "watch", "click", "impression", "dismiss")
"""Every event type, in a fixed order (metric labels, validation messages)."""

MAX_EVENTS: Final = 500
"""Events in one `POST /events` request, at most."""
MAX_EVENT_ID: Final = 64
"""Characters of an `event_id`, at most."""
MAX_SHOWN: Final = 20
"""Impression times kept per movie and user (the impression rule's N is at most this)."""
MAX_IMPRESSIONS: Final = 500
"""Impressions a user's online row keeps, newest first (bounds the per-request read)."""
RATING_MIN: Final = 0.5
RATING_MAX: Final = 5.0


@dataclass(frozen=True, slots=True)
class Event:
    """One feedback event, validated.

    Attributes:
        user_id: The user.
        movie_id: The movie (in the catalog).
        type: What happened.
        value: The rating (0.5..5.0) for `rating`, None for every other type.
        timestamp: When it happened, epoch seconds (the client's, else the time received).
        received: When the API received it, epoch seconds (event-to-online lag).
        event_id: The client's id for deduplication; None: not deduplicated.
    """

    user_id: int
    movie_id: int
    type: EventType
    value: float | None
    timestamp: float
    received: float
    event_id: str | None = None

    def encode(self) -> str:
        """The compact JSON of a stream entry (`decode` reads it back)."""
        return json.dumps(
            [
                self.user_id,
                self.movie_id,
                self.type,
                self.value,
                self.timestamp,
                self.received,
                self.event_id,
            ],
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, payload: str | bytes) -> Event:
        """The event of a stream entry written by `encode`.

        Raises:
            ValueError: Not an encoded event.
        """
        try:
            user_id, movie_id, kind, value, timestamp, received, event_id = json.loads(payload)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not an encoded event: {payload!r:.80}") from exc
        if kind not in EVENT_TYPES:
            raise ValueError(f"unknown event type {kind!r}")
        return cls(
            int(user_id),
            int(movie_id),
            kind,
            None if value is None else float(value),
            float(timestamp),
            float(received),
            None if event_id is None else str(event_id),
        )


class RateLimitedError(RuntimeError):
    """The client posted more events than its rate allows (HTTP 429).

    Attributes:
        retry_after_s: When the client may post again, whole seconds (at least 1).
    """

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[type[RateLimitedError], tuple[int]]:
        return (RateLimitedError, (self.retry_after_s,))


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What `POST /events` answers (HTTP 202).

    Attributes:
        accepted: Events newly appended to the event log.
        duplicates: Events whose `event_id` was seen within the deduplication window.
        duplicate_indices: Their positions in the request (metrics by type).
    """

    accepted: int
    duplicates: int
    duplicate_indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ForgetResult:
    """What `DELETE /users/{user_id}/events` answers.

    Attributes:
        events: The user's entries deleted from the event log (the retained raw events).
        movies: Movies in the user's event state removed (their event-driven features went
            back to the build's row, or away for a user the build did not know).
    """

    events: int
    movies: int


@dataclass(frozen=True, slots=True)
class EventKeys:
    """The Redis keys of one artifacts tree's event data (namespace `movierec:<ns>:ev:`).

    Tests and benchmarks serve their own trees, so their events never mix with a build's.
    """

    namespace: str

    @property
    def prefix(self) -> str:
        """Every key below starts with this."""
        return f"movierec:{self.namespace}:ev:"

    @property
    def stream(self) -> str:
        """The event log (a Redis stream; entry field `e` = `Event.encode()`)."""
        return f"{self.prefix}log"

    @property
    def group(self) -> str:
        """The consumer group of the appliers."""
        return "appliers"

    @property
    def dedup_prefix(self) -> str:
        """`<dedup_prefix><event_id>`: an event_id seen within the window."""
        return f"{self.prefix}id:"

    def state(self, user_id: int) -> str:
        """Hash: the user's event state per movie (`models.features.events`)."""
        return f"{self.prefix}user:{int(user_id)}"

    def base(self, user_id: int) -> str:
        """JSON: the user's online features before their first event was applied."""
        return f"{self.prefix}base:{int(user_id)}"

    def lock(self, user_id: int) -> str:
        """Short lock: one applier at a time updates a user's features."""
        return f"{self.prefix}lock:{int(user_id)}"

    def rate(self, client: str) -> str:
        """Counter of the events `client` (an API key's digest) posted in the current second."""
        return f"{self.prefix}rate:{client}"

    @property
    def users(self) -> str:
        """Set: the users with event state (for deletion and compaction)."""
        return f"{self.prefix}users"


def offline_events_dir(run_dir: Path, namespace: str) -> Path:
    """Where a tree's events are copied as parquet part files unless `offline_dir` says
    otherwise: `<run_dir>/events/<namespace>` (the Events deployment writes there, the full
    build of the tree reads it)."""
    return Path(run_dir) / "events" / namespace
