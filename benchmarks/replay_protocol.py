"""The session-replay protocol of `benchmarks.replay`, as pure functions (no services): the
split into a build part and replayed sessions, the events a session posts, and how an answer
is scored.

Split (`replay_split`). `new_users` users of the ratings table, drawn at random with `seed`
(`select_new_users`), are *new*: none of their ratings reaches the build. Every other user
is *known*: their ratings are split in time (`models.data.temporal_share_split`: each user's
most recent floor(`test_share` x n) ratings, at least `min_test`, are held out; the older
ones train the build). A session is one user's held-out ratings in time order, cut into two
halves (`halves`: the older floor(n/2) are the first half, the rest the second): for a known
user, their held-out ratings; for a new user, their whole history.

Scoring (`Session`, `scored_list`). Relevant: every movie of the second half (the offline
protocol's relevance, `models.metrics.protocol`: every held-out rating, whatever its value).
Excluded: every movie of the first half, from every arm's list, so that all arms of a user
are scored on the same held-out set: the app removes what was posted (seen) by itself; in
the arms without events the client removes them. Each arm asks for `request_k` movies
(k plus the first half's size, at most the API's 100), drops the excluded ones and keeps the
first k. "As served" is the answer's first k without that removal (what the user would see;
for the arms without events, first-half movies then count as misses).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

K_MAX = 100
"""The API's largest `k` (`deployments.schemas.K_MAX`)."""
EVENTS_PER_POST = 500
"""The API's largest event batch."""


@dataclass(frozen=True)
class Rated:
    """One rating of a session."""

    movie_id: int
    rating: float
    timestamp: int


@dataclass(frozen=True)
class Session:
    """One user's replayed ratings.

    Attributes:
        user_id: The user.
        first: The older half, in time order: posted (known users: all of it as ratings;
            new users: their likes) and excluded from every scored list.
        second: The newer half: the relevant movies.
    """

    user_id: int
    first: tuple[Rated, ...]
    second: tuple[Rated, ...]

    @property
    def excluded(self) -> frozenset[int]:
        """The first half's movies."""
        return frozenset(r.movie_id for r in self.first)

    @property
    def relevant(self) -> frozenset[int]:
        """The second half's movies."""
        return frozenset(r.movie_id for r in self.second)

    def likes(self, threshold: float) -> tuple[Rated, ...]:
        """The first half's ratings of at least `threshold`, in time order."""
        return tuple(r for r in self.first if r.rating >= threshold)

    def request_k(self, k: int) -> int:
        """How many movies to ask for: k after removing the first half, within the API's
        bound."""
        return min(K_MAX, k + len(self.first))


@dataclass
class Answer:
    """One user's answer in one arm (the last one asked for)."""

    ids: list[int]
    degraded: bool
    cold_start: bool
    model_version: str
    attempts: int = 1
    degraded_first: bool = False
    fallbacks: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReplaySplit:
    """What the build learns from and what is replayed.

    Attributes:
        train: The build's ratings (known users' older ratings).
        test: Everything else (known users' held-out ratings, new users' whole histories).
        known: Sessions of known users with at least two held-out ratings.
        new: Sessions of new users with at least two ratings.
        settings: How it was made (test share, minimum, new users, seed).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    known: tuple[Session, ...]
    new: tuple[Session, ...]
    settings: dict[str, Any]

    @property
    def new_user_ids(self) -> frozenset[int]:
        """Users of the ratings table withheld from the build."""
        return frozenset(self.settings["new_user_ids"])


def halves(rows: Sequence[Rated]) -> tuple[tuple[Rated, ...], tuple[Rated, ...]]:
    """Ratings in time order (then movie id), cut into the older floor(n/2) and the rest."""
    ordered = sorted(rows, key=lambda r: (r.timestamp, r.movie_id))
    cut = len(ordered) // 2
    return tuple(ordered[:cut]), tuple(ordered[cut:])


def sessions(ratings: pd.DataFrame) -> list[Session]:
    """One session per user of `ratings` with at least two ratings, by user id."""
    out = []
    columns = [ratings[c].tolist() for c in ("user_id", "movie_id", "rating", "timestamp")]
    by_user: dict[int, list[Rated]] = {}
    for user, movie, rating, stamp in zip(*columns, strict=True):
        by_user.setdefault(int(user), []).append(Rated(int(movie), float(rating), int(stamp)))
    for user in sorted(by_user):
        first, second = halves(by_user[user])
        if first and second:
            out.append(Session(user, first, second))
    return out


def select_new_users(user_ids: Iterable[int], n: int, seed: int) -> list[int]:
    """`n` distinct users drawn at random with `seed` (all of them when fewer), sorted."""
    pool = np.array(sorted({int(u) for u in user_ids}), dtype=np.int64)
    take = min(max(n, 0), len(pool))
    chosen = np.random.RandomState(seed).choice(pool, size=take, replace=False)
    return sorted(int(u) for u in chosen)


def replay_split(
    ratings: pd.DataFrame,
    *,
    test_share: float = 0.2,
    min_test: int = 2,
    new_users: int = 100,
    seed: int = 0,
) -> ReplaySplit:
    """The benchmark's split (see the module doc)."""
    from models.data import temporal_share_split

    new_ids = select_new_users(ratings["user_id"].tolist(), new_users, seed)
    is_new = ratings["user_id"].isin(new_ids)
    train, held_out = temporal_share_split(ratings.loc[~is_new], test_share, min_test)
    withheld = ratings.loc[is_new]
    settings = {
        "test_share": test_share,
        "min_test": min_test,
        "new_users": len(new_ids),
        "seed": seed,
        "new_user_ids": new_ids,
    }
    return ReplaySplit(
        train=train,
        test=pd.concat([held_out, withheld]).sort_index(),
        known=tuple(sessions(held_out)),
        new=tuple(sessions(withheld)),
        settings=settings,
    )


def rating_events(user_id: int, rows: Iterable[Rated], run_id: str) -> list[dict[str, Any]]:
    """`POST /events` entries: each rating with its value and original time (epoch seconds);
    the `event_id` names the run, the user and the movie (a retry is a duplicate)."""
    return [
        {
            "event_id": f"replay-{run_id}-{user_id}-{r.movie_id}",
            "user_id": user_id,
            "movie_id": r.movie_id,
            "type": "rating",
            "value": r.rating,
            "timestamp": r.timestamp,
        }
        for r in rows
    ]


def chunked(events: Sequence[dict[str, Any]], size: int = EVENTS_PER_POST) -> list[list[Any]]:
    """The events in requests of at most `size`, in order."""
    return [list(events[i : i + size]) for i in range(0, len(events), size)]


def scored_list(answer: Sequence[int], excluded: Collection[int], k: int) -> list[int]:
    """The answer without the excluded movies, its first k."""
    from models.metrics.protocol import remove_seen

    return remove_seen(answer, excluded, k)


def metrics(
    lists: Mapping[int, Sequence[int]], relevant: Mapping[int, Collection[int]], k: int
) -> dict[str, float]:
    """The offline protocol's metrics (`models.evaluation`): nDCG, precision, recall, MAP."""
    from models.evaluation.report import metrics_dict
    from models.metrics.ranking import ranking_metrics

    out: dict[str, float] = metrics_dict(ranking_metrics(lists, relevant, k))
    return out


def paired_change(
    before: Mapping[int, Sequence[int]],
    after: Mapping[int, Sequence[int]],
    relevant: Mapping[int, Collection[int]],
    k: int,
) -> dict[str, float | int]:
    """Per-user nDCG@k of `after` minus `before` over their common users: how many users
    gained, lost or kept it, the mean change and its standard error."""
    from models.metrics.ranking import ranking_metrics

    users = sorted(set(before) & set(after) & {u for u, r in relevant.items() if r})
    changes = np.array(
        [
            ranking_metrics({u: after[u]}, {u: relevant[u]}, k).ndcg
            - ranking_metrics({u: before[u]}, {u: relevant[u]}, k).ndcg
            for u in users
        ],
        dtype=np.float64,
    )
    n = len(changes)
    return {
        "users": n,
        "better": int((changes > 1e-12).sum()),
        "worse": int((changes < -1e-12).sum()),
        "same": int((np.abs(changes) <= 1e-12).sum()),
        "mean": float(changes.mean()) if n else 0.0,
        "stderr": float(changes.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
    }


def arm_summary(
    answers: Mapping[int, Answer],
    replayed: Sequence[Session],
    scored: Sequence[int],
    k: int,
    posted: Mapping[int, Collection[int]] | None = None,
) -> dict[str, Any]:
    """An arm's metrics over the `scored` users (see the module doc) and its answers' counts
    over every user asked; `posted`: user -> the movies their events named (arms after
    posting: how many answers still hold one, which must be none)."""
    by_user = {s.user_id: s for s in replayed}
    relevant = {u: by_user[u].relevant for u in scored}
    lists = {u: scored_list(answers[u].ids, by_user[u].excluded, k) for u in scored}
    served = {u: answers[u].ids[:k] for u in scored}
    fallbacks: dict[str, int] = {}
    for answer in answers.values():
        for stage in answer.fallbacks:
            fallbacks[stage] = fallbacks.get(stage, 0) + 1
    return {
        "scored_users": len(scored),
        **metrics(lists, relevant, k),
        "as_served": metrics(served, relevant, k),
        "short_lists": sum(len(lists[u]) < k for u in scored),
        "answers_holding_first_half": sum(
            bool(by_user[u].excluded & set(a.ids)) for u, a in answers.items()
        ),
        "answers_holding_posted": None
        if posted is None
        else sum(bool(set(posted.get(u, ())) & set(a.ids)) for u, a in answers.items()),
        "requests": len(answers),
        "asked_again": sum(a.attempts > 1 for a in answers.values()),
        "degraded_first_try": sum(a.degraded_first for a in answers.values()),
        "degraded": sum(a.degraded for a in answers.values()),
        "cold_start": sum(a.cold_start for a in answers.values()),
        "fallbacks": fallbacks,
    }


def score(
    result: Mapping[str, Any], split: ReplaySplit, k: int, like_threshold: float
) -> dict[str, Any]:
    """Every arm and the two deltas (b - a, d - c), each pair on the users not degraded in
    either of its arms. Known users posted their first half, new users its likes."""
    answers = result["answers"]
    posted: dict[int, Collection[int]] = {s.user_id: s.excluded for s in split.known}
    posted.update({s.user_id: {r.movie_id for r in s.likes(like_threshold)} for s in split.new})
    arms: dict[str, Any] = {}
    deltas: dict[str, Any] = {}
    for before, after, group in (("a", "b", split.known), ("c", "d", split.new)):
        asked = [s for s in group if s.user_id in answers[before]]
        users = [
            s.user_id
            for s in asked
            if not answers[before][s.user_id].degraded and not answers[after][s.user_id].degraded
        ]
        for arm in (before, after):
            arms[arm] = arm_summary(answers[arm], asked, users, k, posted if arm == after else None)
            arms[arm]["left_out_degraded"] = len(asked) - len(users)
        key = f"ndcg@{k}"
        by_user = {s.user_id: s for s in asked}
        relevant = {u: by_user[u].relevant for u in users}
        lists = {
            arm: {u: scored_list(answers[arm][u].ids, by_user[u].excluded, k) for u in users}
            for arm in (before, after)
        }
        deltas[f"{after}-{before}"] = {
            key: arms[after][key] - arms[before][key],
            f"recall@{k}": arms[after][f"recall@{k}"] - arms[before][f"recall@{k}"],
            f"{key}_vs_{before}_as_served": arms[after][key] - arms[before]["as_served"][key],
            "per_user": paired_change(lists[before], lists[after], relevant, k),
        }
    return {"arms": arms, "deltas": deltas}
