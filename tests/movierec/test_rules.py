import pytest

from movierec.rules import (
    FilterReport,
    Item,
    RuleConfig,
    apply_boosts,
    apply_post_rules,
    cap_genres,
    filter_items,
    genre_cap_holds,
)


def _ids(items: list[Item]) -> list[int]:
    return [i.movie_id for i in items]


def test_filter_removes_seen_excluded_genre_and_year_and_counts_reasons() -> None:
    items = [
        Item(1, 1.0, ("Drama",), 1995),
        Item(2, 1.0, ("Comedy",), 1990),
        Item(3, 1.0, ("Drama", "War"), 1970),
        Item(4, 1.0, ("Drama",), None),
        Item(5, 1.0, ("Drama",), 1999),
    ]
    report = FilterReport()
    kept = filter_items(
        items,
        seen={1},
        exclude={5},
        genres=["Drama", "War"],
        year_range=(1980, None),
        report=report,
    )
    assert _ids(kept) == []
    assert report.removed == {"seen": 1, "excluded": 1, "genre_filter": 1, "year_filter": 2}


def test_filter_keeps_order_and_passes_everything_without_filters() -> None:
    items = [Item(3, 0.1), Item(1, 0.9), Item(2, 0.5)]
    assert _ids(filter_items(items)) == [3, 1, 2]


def test_year_range_is_inclusive_on_both_sides() -> None:
    items = [Item(1, 1, (), 1980), Item(2, 1, (), 1990), Item(3, 1, (), 1991)]
    assert _ids(filter_items(items, year_range=(1980, 1990))) == [1, 2]


def test_cap_defers_the_fourth_drama_out_of_the_top_five() -> None:
    drama = [Item(i, 10 - i, ("Drama",)) for i in range(1, 6)]  # ids 1..5, all Drama
    others = [Item(6, 4.0, ("Comedy",)), Item(7, 3.0, ("Horror",))]
    out = cap_genres(drama + others, cap=3, window=5)
    # Dramas 1-3 fill three slots; 4 and 5 wait; comedy and horror take slots 4 and 5.
    assert _ids(out) == [1, 2, 3, 6, 7, 4, 5]
    assert genre_cap_holds(out, 3, 5)


def test_multi_genre_movie_counts_for_each_of_its_genres() -> None:
    items = [
        Item(1, 9, ("Action", "Sci-Fi")),
        Item(2, 8, ("Action",)),
        Item(3, 7, ("Sci-Fi", "Action")),
        Item(4, 6, ("Action", "War")),
        Item(5, 5, ("Sci-Fi",)),
        Item(6, 4, ("Comedy",)),
        Item(7, 3, ("Drama",)),
    ]
    out = cap_genres(items, cap=3, window=5)
    # Action reaches 3 with items 1-3, so item 4 waits. Sci-Fi is at 2 (items 1 and 3),
    # so item 5 enters (Sci-Fi = 3) and comedy takes the last slot.
    assert _ids(out) == [1, 2, 3, 5, 6, 4, 7]
    assert genre_cap_holds(out, 3, 5)


def test_cap_fills_short_window_from_waiting_and_reports_it() -> None:
    items = [Item(i, 10 - i, ("Drama",)) for i in range(1, 6)]
    out = cap_genres(items, cap=3, window=5)
    assert _ids(out) == [1, 2, 3, 4, 5]
    assert not genre_cap_holds(out, 3, 5)


def test_exempt_genres_are_not_counted() -> None:
    items = [Item(i, 10 - i, ("Drama",)) for i in range(1, 6)]
    out = cap_genres(items, cap=3, window=5, exempt={"Drama"})
    assert _ids(out) == [1, 2, 3, 4, 5]
    assert genre_cap_holds(out, 3, 5, exempt={"Drama"})


def test_zero_cap_disables_the_rule() -> None:
    items = [Item(i, 10 - i, ("Drama",)) for i in range(1, 6)]
    assert _ids(cap_genres(items, cap=0, window=5)) == [1, 2, 3, 4, 5]


def test_promoted_boost_moves_a_movie_up() -> None:
    items = [Item(1, 1.0), Item(2, 0.8), Item(3, 0.5)]
    config = RuleConfig(promoted_ids=frozenset({3}), promoted_boost=0.6)
    out = apply_boosts(items, config, newest_year=None)
    assert _ids(out) == [3, 1, 2]
    assert out[0].score == pytest.approx(1.1)


def test_recency_boost_halves_every_half_life() -> None:
    items = [Item(1, 0.0, (), 1998), Item(2, 0.0, (), 1993), Item(3, 0.0, (), None)]
    config = RuleConfig(recency_boost=0.4, recency_half_life_years=5.0)
    out = {i.movie_id: i.score for i in apply_boosts(items, config, newest_year=1998)}
    assert out == {1: pytest.approx(0.4), 2: pytest.approx(0.2), 3: 0.0}


def test_post_rules_boost_then_cap_then_cut() -> None:
    items = [Item(i, 10 - i, ("Drama",)) for i in range(1, 5)] + [Item(9, 0.0, ("Comedy",))]
    config = RuleConfig(genre_cap=3, genre_window=5)
    out = apply_post_rules(items, config, newest_year=None, k=4)
    assert _ids(out) == [1, 2, 3, 9]


def test_fatigued_movies_counts_showings_inside_the_window() -> None:
    from movierec.rules import ImpressionRule, fatigued_movies

    rule = ImpressionRule(n=2, window_s=100.0)
    shown = [(1, 950.0), (1, 990.0), (2, 990.0), (3, 850.0), (3, 900.0), (4, 1001.0), (4, 1000.0)]
    # 1: twice inside (900, 1000]; 2: once; 3: 900 is on the horizon (excluded), 850 before;
    # 4: 1001 is after the request (a client's clock ahead), so once
    assert fatigued_movies(shown, 1000.0, rule) == {1}
    assert fatigued_movies(shown, 1000.0, ImpressionRule(n=1, window_s=100.0)) == {1, 2, 4}
    assert fatigued_movies(shown, 1000.0, ImpressionRule(n=2, window_s=200.0)) == {1, 3}
    assert fatigued_movies([], 1000.0, rule) == frozenset()


def test_demote_scales_the_scores_and_resorts() -> None:
    from movierec.rules import demote

    items = [Item(1, 0.9), Item(2, 0.6), Item(3, 0.5), Item(4, -0.2)]
    out = demote(items, {1, 4}, 0.5)
    # 1: 0.9 * 0.5 = 0.45, below 2 (0.6) and 3 (0.5); 4: -0.2 - 0.2 * 0.5 = -0.3
    assert [(i.movie_id, round(i.score, 6)) for i in out] == [
        (2, 0.6),
        (3, 0.5),
        (1, 0.45),
        (4, -0.3),
    ]
    assert demote(items, set(), 0.5) == items
    assert [i.movie_id for i in demote(items, {2}, 0.0)] == [1, 3, 2, 4]  # 0.6 -> 0.0
