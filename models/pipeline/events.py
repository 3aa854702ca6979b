"""Feedback events folded into the interactions the models learn from (full builds only).

The offline copy of the event log (`models.features.event_log`: parquet part files the
Events deployment writes) is read by a `full` build and folded into the ratings table every
step trains on, so the loop closes offline too. Every model reads that table as "user saw
movie, with a rating": retrieval, item-to-item and the ranker's labels take each row as an
interaction; the Feast features take the rating (a like at 4 or more, count, mean) and every
row as seen. Each event type becomes such a row, stamped with the event's own time (the
client's `timestamp`; a client clock ahead of the server's is capped at the time the event
was received, so no feature snapshot is stamped in the future), per (user, movie), by what
the event means (README "Real-time feedback"):

* `dismiss`: negative, for good: a row at `dismiss_rating` (1.0, never a like), whatever
  else the user did to the movie, before or after (online, a dismissed movie is never shown
  again; as a seen row it is never recommended after the rebuild either);
* `rating`: sets the rating; the latest in log order wins (as online), and it replaces the
  dataset's rating of the movie;
* `watch`: seen, an implicit positive at `watch_rating` (3.0, MovieLens's neutral star:
  seen, neither liked nor disliked), only where the user has no rating of the movie;
* `click`: interest, a positive implicit at `click_rating` (4.0, the like threshold: a
  content seed, as online) only where there is neither a rating nor a watch. Offline rows
  have no "not seen" flag: after a rebuild a clicked movie counts as seen;
* `impression`: not a training signal, ignored.

`eval` builds never call this: their split is of ml-100k's own (1997-98) ratings, and the
events carry today's wall-clock times, all after the split's cut, so the only honest rule is
that an eval build ignores the event log entirely.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PRIORITY = {"click": 1, "watch": 2, "rating": 3, "dismiss": 4}
"""Which event of a (user, movie) decides its row: the highest, then the latest in the log."""
EXPLICIT = 3
"""Events at this priority or above replace the dataset's rating; below, only fill a gap."""


@dataclass(frozen=True)
class FoldConfig:
    """The rating each implicit event type becomes (see the module docstring).

    Attributes:
        watch_rating: A watched movie the user did not rate.
        click_rating: A clicked movie the user neither rated nor watched.
        dismiss_rating: A dismissed movie (replaces any rating of it).
    """

    watch_rating: float = 3.0
    click_rating: float = 4.0
    dismiss_rating: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.5 <= value <= 5.0:
                raise ValueError(f"{name} must be within 0.5..5.0, got {value}")

    def to_dict(self) -> dict[str, float]:
        """JSON-ready (the manifest's record)."""
        return asdict(self)


def epoch_seconds(stamps: pd.Series) -> np.ndarray:
    """Whole seconds since the epoch of tz-aware timestamps (the ratings table's unit)."""
    epoch = pd.Timestamp(0, tz="UTC")
    return ((stamps - epoch) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def decisive_events(events: pd.DataFrame, movie_ids: Any = None) -> pd.DataFrame:
    """Per (user, movie), the one event that decides its training row, in log order.

    Args:
        events: The event log (`read_events`: log order, each entry once).
        movie_ids: The catalog; events of other movies are dropped (None: keep all).

    Returns:
        Columns user_id, movie_id, type, value, timestamp (epoch seconds: the event's time,
        at most the time received), priority.
    """
    frame = events[events["type"].isin(list(PRIORITY))]
    if movie_ids is not None:
        frame = frame[frame["movie_id"].isin(list(movie_ids))]
    stamps = epoch_seconds(frame["event_timestamp"])
    if "received" in frame:  # an event did not happen after it was received (clock skew)
        stamps = np.minimum(stamps, epoch_seconds(frame["received"]))
    frame = frame.assign(
        priority=frame["type"].map(PRIORITY).astype(np.int64),
        timestamp=stamps,
        position=np.arange(len(frame)),
    )
    ordered = frame.sort_values(["user_id", "movie_id", "priority", "position"], kind="stable")
    winners = ordered.drop_duplicates(["user_id", "movie_id"], keep="last")
    winners = winners.sort_values("position", kind="stable")
    return winners[["user_id", "movie_id", "type", "value", "timestamp", "priority"]].reset_index(
        drop=True
    )


def fold_events(
    ratings: pd.DataFrame,
    events: pd.DataFrame,
    config: FoldConfig | None = None,
    movie_ids: Any = None,
) -> pd.DataFrame:
    """The ratings table with the events folded in (see the module docstring).

    Args:
        ratings: user_id, movie_id, rating (float32), timestamp (int64 seconds).
        events: The event log, in log order (`models.features.event_log.read_events`).
        config: The ratings of implicit events.
        movie_ids: The catalog (events of other movies are dropped); None: keep all.

    Returns:
        The dataset's rows that no event replaced, in their order, then one row per
        (user, movie) an event decided, in log order. `ratings` itself when no event
        changes anything (the same data, hence the same fingerprint).
    """
    config = config or FoldConfig()
    winners = decisive_events(events, movie_ids)
    if winners.empty:
        return ratings
    values = {
        "watch": config.watch_rating,
        "click": config.click_rating,
        "dismiss": config.dismiss_rating,
    }
    rating = np.where(
        winners["type"] == "rating",
        winners["value"].astype(np.float64),
        winners["type"].map(values).astype(np.float64),
    )
    winners = winners.assign(rating=rating)
    pairs = pd.MultiIndex.from_frame(ratings[["user_id", "movie_id"]])
    decided = pd.MultiIndex.from_frame(winners[["user_id", "movie_id"]])
    in_dataset = decided.isin(pairs)
    explicit = winners["priority"].to_numpy() >= EXPLICIT
    rows = winners[explicit | ~in_dataset]
    if rows.empty:
        return ratings
    replaced = pairs.isin(pd.MultiIndex.from_frame(rows[["user_id", "movie_id"]]))
    added = pd.DataFrame(
        {
            "user_id": rows["user_id"].to_numpy(np.int64),
            "movie_id": rows["movie_id"].to_numpy(np.int64),
            "rating": rows["rating"].to_numpy(np.float32),
            "timestamp": rows["timestamp"].to_numpy(np.int64),
        }
    )
    kept = ratings[~replaced]
    folded = pd.concat([kept, added.astype(kept.dtypes.to_dict())], ignore_index=True)
    return folded


def events_digest(events: pd.DataFrame) -> str:
    """A content hash of the event log as read (each entry once, deletions applied); "" for
    no events."""
    if events.empty:
        return ""
    flat = events[["entry_id", "user_id", "movie_id", "type", "value", "event_timestamp"]]
    digest = hashlib.sha256(pd.util.hash_pandas_object(flat, index=False).to_numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class FoldedEvents:
    """What a full build took from the event log (the manifest's `events` record).

    Attributes:
        ratings: The ratings with the events folded in.
        record: The log's directory, digest, counts by type, rows added or replaced.
    """

    ratings: pd.DataFrame
    record: dict[str, Any]


def fold_event_log(
    ratings: pd.DataFrame,
    directory: Path,
    config: FoldConfig | None = None,
    movie_ids: Any = None,
) -> FoldedEvents:
    """Reads the event log under `directory` (absent: no events) and folds it into `ratings`."""
    from models.features.event_log import read_events

    config = config or FoldConfig()
    events = read_events(directory)
    folded = fold_events(ratings, events, config, movie_ids)
    by_type = {str(k): int(v) for k, v in events["type"].value_counts().sort_index().items()}
    record = {
        "dir": str(directory),
        "digest": events_digest(events),
        "events": len(events),
        "by_type": by_type,
        "last_entry": str(events["entry_id"].iloc[-1]) if len(events) else None,
        "rows_before": len(ratings),
        "rows_after": len(folded),
        "config": config.to_dict(),
    }
    return FoldedEvents(folded, record)
