"""Business rules applied around ranking: filters before, boosts and the genre cap after.

Pure logic, shared by the online Controller and the offline served-quality replay.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True)
class Item:
    """A candidate movie with the fields the rules read.

    Attributes:
        movie_id: MovieLens movie id.
        score: Ranking score; higher is better (unitless, model-dependent scale).
        genres: Genre names.
        year: Release year, or None when unknown.
    """

    movie_id: int
    score: float
    genres: tuple[str, ...] = ()
    year: int | None = None


@dataclass(frozen=True)
class RuleConfig:
    """Post-ranking rules; every field is a runtime knob (Serve `user_config`).

    Attributes:
        genre_cap: At most this many movies of one genre in the first `genre_window`
            positions; 0 disables the cap.
        genre_window: How many leading positions the cap watches.
        promoted_ids: Movies that receive `promoted_boost`.
        promoted_boost: Added to a promoted movie's score.
        recency_boost: Added to the score of a movie from the catalog's newest year, and
            halved for every `recency_half_life_years` it is older.
        recency_half_life_years: Half-life of the recency boost, in years.
    """

    genre_cap: int = 3
    genre_window: int = 5
    promoted_ids: frozenset[int] = frozenset()
    promoted_boost: float = 0.0
    recency_boost: float = 0.0
    recency_half_life_years: float = 5.0


@dataclass
class FilterReport:
    """How many candidates each filter removed (for metrics: nothing is dropped silently)."""

    removed: Counter[str] = field(default_factory=Counter)


def filter_items(
    items: Iterable[Item],
    seen: Collection[int] = (),
    exclude: Collection[int] = (),
    genres: Collection[str] | None = None,
    year_range: tuple[int | None, int | None] | None = None,
    report: FilterReport | None = None,
) -> list[Item]:
    """Drops the items that the request or the user's history forbid.

    Args:
        items: Candidates in any order; the order is kept.
        seen: Movie ids the user already rated.
        exclude: Movie ids the request excludes.
        genres: If given, keep only movies with at least one of these genres.
        year_range: Inclusive (min, max) release year; None on a side means unbounded.
            A movie with an unknown year fails any year filter.
        report: Receives the number of items removed per reason.

    Returns:
        The items that pass every filter.
    """
    wanted = set(genres) if genres else None
    low, high = year_range if year_range else (None, None)
    kept: list[Item] = []
    for item in items:
        reason = _rejection(item, seen, exclude, wanted, low, high)
        if reason is None:
            kept.append(item)
        elif report is not None:
            report.removed[reason] += 1
    return kept


def _rejection(
    item: Item,
    seen: Collection[int],
    exclude: Collection[int],
    wanted: set[str] | None,
    low: int | None,
    high: int | None,
) -> str | None:
    if item.movie_id in seen:
        return "seen"
    if item.movie_id in exclude:
        return "excluded"
    if wanted is not None and wanted.isdisjoint(item.genres):
        return "genre_filter"
    if (low is not None or high is not None) and item.year is None:
        return "year_filter"
    if item.year is not None and (
        (low is not None and item.year < low) or (high is not None and item.year > high)
    ):
        return "year_filter"
    return None


def apply_boosts(items: Sequence[Item], config: RuleConfig, newest_year: int | None) -> list[Item]:
    """Adds the promotion and recency boosts to the scores and re-sorts, best first.

    Args:
        items: Ranked candidates.
        config: The boosts.
        newest_year: The catalog's newest release year (the recency reference).

    Returns:
        Items with boosted scores, sorted by score descending (stable on ties).
    """
    boosted = []
    for item in items:
        bonus = 0.0
        if item.movie_id in config.promoted_ids:
            bonus += config.promoted_boost
        if config.recency_boost and newest_year is not None and item.year is not None:
            age = max(0, newest_year - item.year)
            bonus += config.recency_boost * math.pow(0.5, age / config.recency_half_life_years)
        boosted.append(replace(item, score=item.score + bonus) if bonus else item)
    return sorted(boosted, key=lambda i: -i.score)


def cap_genres(
    items: Sequence[Item], cap: int, window: int, exempt: Collection[str] = ()
) -> list[Item]:
    """Reorders a ranked list so no genre fills more than `cap` of the first `window` slots.

    Greedy and order-preserving: walking down the ranking, an item enters the window only if
    none of its counted genres has reached the cap there; items that would break the cap wait
    and follow the window in their original order. A movie counts once for each genre.
    If the whole list cannot fill the window within the cap, the free slots are filled
    from the waiting items in order; `genre_cap_holds` tells the caller whether it held.

    Args:
        items: Candidates, best first.
        cap: Maximum movies per genre inside the window; 0 disables the rule.
        window: Number of leading positions the cap applies to.
        exempt: Genres not counted, e.g. the genres the request explicitly asked for.

    Returns:
        The same items, reordered.
    """
    if cap <= 0 or window <= 0:
        return list(items)
    head: list[Item] = []
    waiting: list[Item] = []
    counts: Counter[str] = Counter()
    for index, item in enumerate(items):
        if len(head) == window:
            return head + waiting + list(items[index:])
        counted = [g for g in item.genres if g not in exempt]
        if all(counts[g] < cap for g in counted):
            head.append(item)
            counts.update(counted)
        else:
            waiting.append(item)
    return head + waiting


def genre_cap_holds(
    items: Sequence[Item], cap: int, window: int, exempt: Collection[str] = ()
) -> bool:
    """Whether no counted genre appears more than `cap` times in the first `window` items."""
    if cap <= 0:
        return True
    counts = Counter(g for item in items[:window] for g in item.genres if g not in exempt)
    return all(n <= cap for n in counts.values())


def apply_post_rules(
    items: Sequence[Item],
    config: RuleConfig,
    newest_year: int | None,
    k: int,
    exempt_genres: Collection[str] = (),
) -> list[Item]:
    """Boosts, then caps genres, then cuts to the top `k`.

    Args:
        items: Ranked, filtered candidates.
        config: The rules.
        newest_year: The catalog's newest release year.
        k: Number of items to return.
        exempt_genres: Genres the cap does not count (those the request filters on).

    Returns:
        At most `k` items.
    """
    boosted = apply_boosts(items, config, newest_year)
    return cap_genres(boosted, config.genre_cap, config.genre_window, exempt_genres)[:k]


@dataclass(frozen=True)
class ImpressionRule:
    """Movies shown to a user over and over without a reaction (Controller
    `user_config.impressions`).

    Attributes:
        n: A movie shown at least this many times within `window_s` (counting only the
            showings after the user's last click, watch or rating of it) is fatigued.
        window_s: The window, in seconds, ending at the request.
        action: "demote": its score times `demote_factor`; "drop": it is not recommended.
        demote_factor: In [0, 1]; a negative score moves down by the same share.
    """

    n: int = 3
    window_s: float = 86_400.0
    action: Literal["demote", "drop"] = "demote"
    demote_factor: float = 0.5


def fatigued_movies(
    impressions: Iterable[tuple[int, float]], now: float, rule: ImpressionRule
) -> frozenset[int]:
    """The movies shown at least `rule.n` times in `(now - rule.window_s, now]`.

    Args:
        impressions: (movie_id, epoch seconds) per showing (the user's `impressions`).
        now: The request's time, epoch seconds.
        rule: N and the window.
    """
    horizon = now - rule.window_s
    counts: defaultdict[int, int] = defaultdict(int)
    for movie_id, shown_at in impressions:
        if horizon < shown_at <= now:
            counts[movie_id] += 1
    return frozenset(m for m, c in counts.items() if c >= rule.n)


def demote(items: Sequence[Item], movies: Collection[int], factor: float) -> list[Item]:
    """`items` with the scores of `movies` lowered by `factor`, re-sorted best first (stable).

    A score s >= 0 becomes s * factor, a negative one s - |s| * (1 - factor): lower either way.
    """
    if not movies:
        return list(items)
    out = [
        replace(i, score=i.score - abs(i.score) * (1.0 - factor)) if i.movie_id in movies else i
        for i in items
    ]
    return sorted(out, key=lambda i: -i.score)
