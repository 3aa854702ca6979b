"""The event fold: base features moved by events (pure logic, no services)."""

from __future__ import annotations

import pytest

from models.features.events import (
    FEATURES_VIEW,
    HISTORY_VIEW,
    BaseFeatures,
    EventWeights,
    MovieState,
    fold_features,
    genre_vector,
    parse_seq,
)
from models.features.genres import GENRE_INDEX
from movierec.events import Event

GENRES = {1: ("Comedy",), 2: ("Drama",), 3: ("Drama", "War"), 4: ("Horror",), 5: ("Comedy",)}


def event(movie_id: int, kind: str, value: float | None = None) -> Event:
    return Event(7, movie_id, kind, value, 1.0e9, 1.0e9)  # type: ignore[arg-type]


def fold(
    events: list[tuple[Event, str]], base: BaseFeatures | None = None
) -> dict[str, dict[str, object]]:
    states: dict[int, MovieState] = {}
    for e, entry in events:
        states[e.movie_id] = states.get(e.movie_id, MovieState()).apply(e, parse_seq(entry), entry)
    return fold_features(base or BaseFeatures(), states, GENRES, EventWeights())


def test_a_new_user_with_likes_gets_them_as_seeds_latest_first() -> None:
    rows = fold([(event(1, "rating", 5.0), "10-0"), (event(5, "rating", 4.0), "11-0")])
    assert rows[HISTORY_VIEW]["liked_movie_ids"] == [5, 1]
    assert rows[HISTORY_VIEW]["seen_movie_ids"] == [1, 5]
    assert rows[FEATURES_VIEW]["user_rating_count"] == 2
    assert rows[FEATURES_VIEW]["user_rating_mean"] == pytest.approx(4.5)
    affinity = rows[FEATURES_VIEW]["user_genre_affinity"]
    assert isinstance(affinity, list) and affinity[GENRE_INDEX["Comedy"]] == pytest.approx(1.0)


def test_a_later_rating_replaces_the_earlier_one_whatever_the_apply_order() -> None:
    low, high = (event(2, "rating", 2.0), "20-0"), (event(2, "rating", 5.0), "10-0")
    for order in ([high, low], [low, high]):
        rows = fold(order)
        assert rows[HISTORY_VIEW]["liked_movie_ids"] == []  # the later (low) rating wins
        assert rows[FEATURES_VIEW]["user_rating_mean"] == pytest.approx(2.0)


def test_watch_dismiss_and_low_rating_mark_seen_and_drop_base_likes() -> None:
    base = BaseFeatures(liked=(3, 4, 1), seen=(3, 4, 1), rating_count=3, rating_mean=4.0)
    rows = fold(
        [
            (event(3, "dismiss"), "1-0"),
            (event(4, "rating", 1.0), "2-0"),
            (event(2, "watch"), "3-0"),
        ],
        base,
    )
    assert rows[HISTORY_VIEW]["liked_movie_ids"] == [1]
    assert rows[HISTORY_VIEW]["seen_movie_ids"] == [3, 4, 1, 2]
    # movie 4 was rated before the build: the mean keeps the base's (no per-movie rating)
    assert rows[FEATURES_VIEW]["user_rating_count"] == 3


def test_clicks_are_seeds_after_likes_not_seen_and_counted_once_per_entry() -> None:
    click = event(4, "click")
    state = MovieState().apply(click, (5, 0), "5-0")
    assert state.apply(click, (5, 0), "5-0") == state  # replayed entry: no change
    assert state.apply(click, (6, 0), "6-0").clicks == 2
    rows = fold([(event(1, "rating", 4.5), "1-0"), (click, "5-0")])
    assert rows[HISTORY_VIEW]["liked_movie_ids"] == [1, 4]
    assert rows[HISTORY_VIEW]["seen_movie_ids"] == [1]
    no_clicks = fold_features(BaseFeatures(), {4: state}, GENRES, EventWeights(click_seeds=False))
    assert no_clicks[HISTORY_VIEW]["liked_movie_ids"] == []


def test_genre_affinity_blends_the_base_by_its_genre_tags() -> None:
    # base: one Drama movie seen, affinity all Drama; one new Comedy rating -> half and half
    drama = [0.0] * len(GENRE_INDEX)
    drama[GENRE_INDEX["Drama"]] = 1.0
    base = BaseFeatures(seen=(2,), rating_count=1, rating_mean=3.0, genre_affinity=tuple(drama))
    affinity = fold([(event(1, "rating", 5.0), "1-0")], base)[FEATURES_VIEW]["user_genre_affinity"]
    assert isinstance(affinity, list)
    assert affinity[GENRE_INDEX["Drama"]] == pytest.approx(0.5)
    assert affinity[GENRE_INDEX["Comedy"]] == pytest.approx(0.5)


def test_states_and_bases_round_trip_through_their_encoding() -> None:
    state = (
        MovieState()
        .apply(event(1, "rating", 3.5), (9, 1), "9-1")
        .apply(event(1, "impression"), (9, 2), "9-2")
    )
    assert MovieState.decode(state.encode()) == state
    base = BaseFeatures(liked=(1,), seen=(1, 2), rating_count=2, rating_mean=3.5)
    assert BaseFeatures.decode(base.encode()) == base
    e = Event(1, 2, "rating", 4.5, 1.5e9, 1.6e9, "abc")
    assert Event.decode(e.encode()) == e
    with pytest.raises(ValueError):
        Event.decode(b"[1, 2]")


def test_genre_vector_folds_aliases_and_ignores_unknown_genres() -> None:
    vector = genre_vector(["Children's", "unknown", "Nonsense"])
    assert vector.sum() == 1.0 and vector[GENRE_INDEX["Children"]] == 1.0


def shown(movie_id: int, at: float) -> Event:
    return Event(7, movie_id, "impression", None, at, at)


def test_impressions_go_online_newest_first_until_a_click_or_a_watch() -> None:
    rows = fold(
        [
            (shown(1, 100.0), "10-0"),
            (shown(2, 110.0), "11-0"),
            (shown(1, 120.0), "12-0"),
            (shown(3, 130.0), "13-0"),
            (event(3, "watch"), "14-0"),  # seen: its showings no longer count
            (shown(2, 140.0), "15-0"),
            (event(2, "click"), "16-0"),  # a click answers the showings before it ...
            (shown(2, 150.0), "17-0"),  # ... not the one after
        ]
    )
    assert rows[HISTORY_VIEW]["impressed_movie_ids"] == [2, 1, 1]
    assert rows[HISTORY_VIEW]["impressed_at"] == [150, 120, 100]


def test_an_impression_applied_twice_counts_once_and_old_states_still_decode() -> None:
    state = MovieState().apply(shown(1, 100.0), (10, 0), "10-0")
    assert state.apply(shown(1, 100.0), (10, 0), "10-0") == state
    assert MovieState.decode(state.encode()) == state
    assert state.shown == ((10, 0, 100),)
    old = '[null,[0,0],[0,0],[0,0],0,[0,0],2,["1-0","2-0"]]'  # written before `shown`
    assert MovieState.decode(old) == MovieState(impressions=2, seen_ids=("1-0", "2-0"))


def test_a_movie_keeps_its_last_max_shown_impressions() -> None:
    from movierec.events import MAX_SHOWN

    state = MovieState()
    for i in range(MAX_SHOWN + 5):
        state = state.apply(shown(1, 100.0 + i), (10 + i, 0), f"{10 + i}-0")
    assert len(state.shown) == MAX_SHOWN and state.impressions == MAX_SHOWN + 5
    assert state.shown[0] == (15, 0, 105) and state.shown[-1][2] == 100 + MAX_SHOWN + 4
