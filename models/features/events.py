"""Event-driven user features: a user's events folded over their materialized features.

The online store holds each user's features as of the last build (`user_features`,
`user_history`). Feedback events move them: this module is the pure fold, used by the
Events deployment's applier (and testable without any service).

* `MovieState`: what the user did to one movie (latest rating, watched, dismissed, clicks,
  impressions), each part stamped with the stream position of the event that set it, so
  events applied twice or out of order (two appliers) give the same state.
* `BaseFeatures`: the user's online features before their first event (kept aside, so that
  every later fold starts from it and is idempotent).
* `fold_features`: base + states -> the rows of `user_history` and `user_features`.

What each event means (README "Real-time feedback"): `rating` marks the movie seen and sets
the user's rating (at least `like_threshold`: a liked seed; below: a negative, out of the
liked list); `watch` marks it seen; `dismiss` marks it seen (never recommended again) and
negative; `click` is interest (a seed after the rated likes, when `click_seeds`), not seen;
`impression` is counted, and its time kept (the last `MAX_SHOWN` per movie): the showings
since the movie's last click, watch or rating go online as `impressed_movie_ids` /
`impressed_at`, the Controller's impression rule demotes or drops a movie shown N times within
its window (`movierec.rules.fatigued_movies`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from models.features.genres import GENRE_INDEX, GENRES, canonical_genres
from movierec.events import MAX_IMPRESSIONS, MAX_SHOWN, Event
from movierec.stages import IMPRESSED_AT, IMPRESSED_MOVIE_IDS, LIKED_MOVIE_IDS, SEEN_MOVIE_IDS

Seq = tuple[int, int]
"""A stream position (`<ms>-<n>` of a Redis stream entry id): later events compare larger."""
NEVER: Seq = (0, 0)

RATING_COUNT = "user_rating_count"
RATING_MEAN = "user_rating_mean"
GENRE_AFFINITY = "user_genre_affinity"
HISTORY_VIEW = "user_history"
FEATURES_VIEW = "user_features"

Shown = tuple[int, int, int]
"""One impression: its stream position (ms, n) and the event time, epoch seconds."""


def parse_seq(entry_id: str | bytes) -> Seq:
    """The stream position of a Redis stream entry id ("1733097000000-3")."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, n = text.partition("-")
    return int(ms), int(n or 0)


@dataclass(frozen=True)
class EventWeights:
    """How events move the features (the Events deployment's `user_config.weights`).

    Attributes:
        like_threshold: A rating at least this is a like (a content seed), below a negative.
        max_liked: Length cap of `liked_movie_ids` (as in the offline snapshots).
        click_seeds: Clicked movies (not rated, not dismissed) become seeds, after the likes.
    """

    like_threshold: float = 4.0
    max_liked: int = 50
    click_seeds: bool = True


@dataclass(frozen=True)
class MovieState:
    """What one user did to one movie, each part with the position of the event that set it."""

    rating: float | None = None
    rated_at: Seq = NEVER
    watched_at: Seq = NEVER
    dismissed_at: Seq = NEVER
    clicks: int = 0
    clicked_at: Seq = NEVER
    impressions: int = 0
    seen_ids: tuple[str, ...] = field(default=())
    """Stream entry ids already counted (clicks, impressions), so a replay adds nothing."""
    shown: tuple[Shown, ...] = ()
    """The last `MAX_SHOWN` impressions, by stream position (oldest first)."""

    def apply(self, event: Event, seq: Seq, entry_id: str) -> MovieState:
        """The state after `event` (at stream position `seq`). Idempotent: an event whose
        entry was already applied, or an older rating than the stored one, changes nothing."""
        if event.type == "rating":
            if seq <= self.rated_at:
                return self
            return replace(self, rating=event.value, rated_at=seq)
        if event.type == "watch":
            return replace(self, watched_at=max(self.watched_at, seq))
        if event.type == "dismiss":
            return replace(self, dismissed_at=max(self.dismissed_at, seq))
        if entry_id in self.seen_ids:
            return self
        counted = (*self.seen_ids[-15:], entry_id)
        if event.type == "click":
            return replace(
                self, clicks=self.clicks + 1, clicked_at=max(self.clicked_at, seq), seen_ids=counted
            )
        shown = tuple(sorted({*self.shown, (seq[0], seq[1], int(event.timestamp))}))
        return replace(
            self, impressions=self.impressions + 1, seen_ids=counted, shown=shown[-MAX_SHOWN:]
        )

    def unanswered(self) -> list[Shown]:
        """The impressions after the movie's last click, watch or rating (none once seen:
        a seen movie is never recommended anyway)."""
        if self.seen:
            return []
        return [s for s in self.shown if (s[0], s[1]) > self.clicked_at]

    @property
    def seen(self) -> bool:
        """Rated, watched or dismissed: never recommended again."""
        return self.rated_at > NEVER or self.watched_at > NEVER or self.dismissed_at > NEVER

    def encode(self) -> str:
        """Compact JSON (a field of the user's state hash)."""
        return json.dumps(
            [
                self.rating,
                list(self.rated_at),
                list(self.watched_at),
                list(self.dismissed_at),
                self.clicks,
                list(self.clicked_at),
                self.impressions,
                list(self.seen_ids),
                [list(s) for s in self.shown],
            ],
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, payload: str | bytes) -> MovieState:
        """The state `encode` wrote."""
        r, ra, wa, da, c, ca, i, ids, *rest = json.loads(payload)
        shown = tuple((int(a), int(b), int(t)) for a, b, t in rest[0]) if rest else ()
        return cls(r, tuple(ra), tuple(wa), tuple(da), c, tuple(ca), i, tuple(ids), shown)


@dataclass(frozen=True)
class BaseFeatures:
    """A user's online features before their first event (all empty for a new user)."""

    liked: tuple[int, ...] = ()
    seen: tuple[int, ...] = ()
    rating_count: int = 0
    rating_mean: float | None = None
    genre_affinity: tuple[float, ...] | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> BaseFeatures:
        """From an online feature row (None or missing values: empty)."""
        affinity = row.get(GENRE_AFFINITY)
        mean = row.get(RATING_MEAN)
        return cls(
            liked=tuple(int(i) for i in row.get(LIKED_MOVIE_IDS) or ()),
            seen=tuple(int(i) for i in row.get(SEEN_MOVIE_IDS) or ()),
            rating_count=int(row.get(RATING_COUNT) or 0),
            rating_mean=None if mean is None else float(mean),
            genre_affinity=None if not affinity else tuple(float(a) for a in affinity),
        )

    def encode(self) -> str:
        """JSON (the user's base key)."""
        return json.dumps(
            {
                LIKED_MOVIE_IDS: list(self.liked),
                SEEN_MOVIE_IDS: list(self.seen),
                RATING_COUNT: self.rating_count,
                RATING_MEAN: self.rating_mean,
                GENRE_AFFINITY: None if self.genre_affinity is None else list(self.genre_affinity),
            }
        )

    @classmethod
    def decode(cls, payload: str | bytes) -> BaseFeatures:
        """The base `encode` wrote."""
        return cls.from_row(json.loads(payload))


def genre_vector(genres: Iterable[str]) -> np.ndarray:
    """The multi-hot vector of a movie's genres in `GENRES` order."""
    vector = np.zeros(len(GENRES), dtype=np.float64)
    for genre in canonical_genres(list(genres)):
        index = GENRE_INDEX.get(genre)
        if index is not None:
            vector[index] = 1.0
    return vector


def fold_features(
    base: BaseFeatures,
    states: Mapping[int, MovieState],
    movie_genres: Mapping[int, Sequence[str]],
    weights: EventWeights,
) -> dict[str, dict[str, Any]]:
    """The user's `user_history` and `user_features` rows: `base` moved by the events.

    * liked: rated likes, latest first; then clicked movies (when `click_seeds`), latest
      first; then the base likes; without negatives (a low rating, a dismiss); capped.
    * seen: the base's, then every movie rated, watched or dismissed (in stream order).
    * rating count and mean: the base's plus the ratings of movies the base had not seen (a
      re-rating of a movie rated before the build moves the liked list, not the mean: the
      base keeps no per-movie rating).
    * genre affinity: the base's shares weighted by the genre tags of the base's seen
      movies, plus the genre tags of the newly rated movies, renormalized.
    * impressions: every showing of a movie not seen and not clicked since, newest first
      (ties: by movie), at most `MAX_IMPRESSIONS`: `impressed_movie_ids` and `impressed_at`.

    Returns:
        {view name: {feature name: value}} for every feature of both views (a Feast write
        must carry every column of its view).
    """
    threshold = weights.like_threshold
    negative = {
        m
        for m, s in states.items()
        if s.dismissed_at > NEVER or (s.rating is not None and s.rating < threshold)
    }
    likes = sorted(
        (m for m, s in states.items() if s.rating is not None and s.rating >= threshold),
        key=lambda m: (states[m].rated_at, m),
        reverse=True,
    )
    clicks = (
        sorted(
            (m for m, s in states.items() if s.clicks and s.rating is None),
            key=lambda m: (states[m].clicked_at, m),
            reverse=True,
        )
        if weights.click_seeds
        else []
    )
    liked = [m for m in dict.fromkeys([*likes, *clicks, *base.liked]) if m not in negative]
    base_seen = set(base.seen)
    new_seen = sorted(
        (m for m, s in states.items() if s.seen and m not in base_seen),
        key=lambda m: (max(states[m].rated_at, states[m].watched_at, states[m].dismissed_at), m),
    )
    new_ratings = {
        m: float(s.rating) for m, s in states.items() if s.rating is not None and m not in base_seen
    }
    count = base.rating_count + len(new_ratings)
    total = (base.rating_mean or 0.0) * base.rating_count + sum(new_ratings.values())
    mean = None if count == 0 else total / count
    tags = np.zeros(len(GENRES), dtype=np.float64)
    if base.genre_affinity is not None and len(base.genre_affinity) == len(GENRES):
        base_tags = sum(float(genre_vector(movie_genres.get(m, ())).sum()) for m in base.seen)
        tags += np.asarray(base.genre_affinity, dtype=np.float64) * base_tags
    for m in new_ratings:
        tags += genre_vector(movie_genres.get(m, ()))
    affinity = tags / tags.sum() if tags.sum() > 0 else tags
    shown = sorted(
        ((s[2], s[0], s[1], m) for m, state in states.items() for s in state.unanswered()),
        reverse=True,
    )[:MAX_IMPRESSIONS]
    return {
        HISTORY_VIEW: {
            LIKED_MOVIE_IDS: liked[: weights.max_liked],
            SEEN_MOVIE_IDS: [*base.seen, *new_seen],
            IMPRESSED_MOVIE_IDS: [m for *_, m in shown],
            IMPRESSED_AT: [t for t, *_ in shown],
        },
        FEATURES_VIEW: {
            RATING_COUNT: count,
            RATING_MEAN: mean,
            GENRE_AFFINITY: [float(a) for a in affinity],
        },
    }
