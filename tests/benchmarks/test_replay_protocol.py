"""The session-replay protocol's pure logic, against values computed by hand: the halves, the
choice of new users, the split the build gets, the events, and scoring both arms of a user on
the same held-out set."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmarks.replay_protocol import (
    Answer,
    Rated,
    ReplaySplit,
    Session,
    chunked,
    halves,
    paired_change,
    rating_events,
    replay_split,
    score,
    scored_list,
    select_new_users,
    sessions,
)


def _ratings(rows: list[tuple[int, int, float, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


def test_halves_cut_the_time_ordered_ratings_with_the_older_floor_half_first() -> None:
    rows = [Rated(5, 4.0, 500), Rated(1, 3.0, 100), Rated(9, 5.0, 300), Rated(2, 1.0, 300)]
    rows.append(Rated(7, 2.0, 900))
    first, second = halves(rows)
    # times 100, 300 (movie 2), 300 (movie 9), 500, 900: floor(5 / 2) = 2 older ones first
    assert [r.movie_id for r in first] == [1, 2]
    assert [r.movie_id for r in second] == [9, 5, 7]
    assert halves([Rated(3, 4.0, 1)]) == ((), (Rated(3, 4.0, 1),))


def test_sessions_keep_users_with_two_ratings_or_more() -> None:
    frame = _ratings([(2, 10, 4.0, 5), (1, 11, 5.0, 2), (2, 12, 3.0, 1), (3, 13, 4.0, 1)])
    out = sessions(frame)
    assert [s.user_id for s in out] == [2]  # users 1 and 3 have one rating each
    assert out[0].first == (Rated(12, 3.0, 1),) and out[0].second == (Rated(10, 4.0, 5),)


def test_new_users_are_a_seeded_sample_without_repeats() -> None:
    users = list(range(1, 51)) * 3
    chosen = select_new_users(users, 10, seed=0)
    assert chosen == sorted(set(chosen)) and len(chosen) == 10
    assert set(chosen) <= set(range(1, 51))
    assert select_new_users(users, 10, seed=0) == chosen
    assert select_new_users(users, 10, seed=1) != chosen
    assert select_new_users([4, 2], 5, seed=0) == [2, 4]  # fewer users than asked: all


def test_the_split_withholds_new_users_and_holds_out_each_known_users_latest_share() -> None:
    rows = []
    for user in (1, 2, 3):
        rows += [(user, 100 * user + i, float(1 + i % 5), 1000 * user + i) for i in range(10)]
    ratings = _ratings(rows)
    new = select_new_users([1, 2, 3], 1, seed=7)[0]
    split = replay_split(ratings, test_share=0.2, min_test=3, new_users=1, seed=7)
    assert split.new_user_ids == {new}
    assert new not in set(split.train["user_id"])
    known = sorted({1, 2, 3} - {new})
    for session in split.known:
        # max(3, floor(0.2 * 10)) = 3 held out: movies 7, 8, 9 of the user, 7 first
        base = 100 * session.user_id
        assert [r.movie_id for r in session.first] == [base + 7]
        assert [r.movie_id for r in session.second] == [base + 8, base + 9]
        kept = split.train.loc[split.train["user_id"] == session.user_id, "movie_id"]
        assert sorted(kept) == [base + i for i in range(7)]
    assert [s.user_id for s in split.known] == known
    (withheld,) = split.new
    assert [r.movie_id for r in withheld.first] == [100 * new + i for i in range(5)]
    assert [r.movie_id for r in withheld.second] == [100 * new + i for i in range(5, 10)]
    # train and test partition the ratings
    assert len(split.train) + len(split.test) == len(ratings)
    assert set(split.train.index).isdisjoint(split.test.index)


def test_a_session_excludes_its_first_half_and_asks_for_room_to_remove_it() -> None:
    first = tuple(Rated(m, r, t) for m, r, t in ((1, 5.0, 1), (2, 3.0, 2), (3, 4.0, 3)))
    session = Session(9, first, (Rated(4, 2.0, 4), Rated(5, 5.0, 5)))
    assert session.excluded == {1, 2, 3} and session.relevant == {4, 5}
    assert [r.movie_id for r in session.likes(4.0)] == [1, 3]
    assert session.request_k(10) == 13
    long = Session(9, tuple(Rated(m, 4.0, m) for m in range(200)), ())
    assert long.request_k(10) == 100  # the API's bound


def test_rating_events_carry_value_and_original_time_and_are_chunked_by_500() -> None:
    events = rating_events(7, [Rated(50, 4.0, 874965758), Rated(51, 2.0, 874965760)], "r1")
    assert events[0] == {
        "event_id": "replay-r1-7-50",
        "user_id": 7,
        "movie_id": 50,
        "type": "rating",
        "value": 4.0,
        "timestamp": 874965758,
    }
    assert events[1]["event_id"] == "replay-r1-7-51"
    many = [{"n": i} for i in range(1001)]
    assert [len(batch) for batch in chunked(many)] == [500, 500, 1]
    assert chunked(many)[2] == [{"n": 1000}]


def test_scored_list_removes_the_first_half_then_cuts() -> None:
    assert scored_list([5, 1, 7, 2, 9], {1, 2}, 2) == [5, 7]
    assert scored_list([1, 2], {1, 2}, 10) == []


def _answer(ids: list[int], *, degraded: bool = False, cold: bool = False) -> Answer:
    return Answer(ids, degraded, cold, "v1", degraded_first=degraded)


def test_both_arms_are_scored_on_the_same_held_out_set_without_degraded_users() -> None:
    user1 = Session(1, (Rated(20, 4.0, 1),), (Rated(10, 5.0, 2), Rated(11, 3.0, 3)))
    user2 = Session(2, (Rated(30, 4.0, 1),), (Rated(31, 5.0, 2), Rated(32, 3.0, 3)))
    new = Session(3, (Rated(40, 5.0, 1), Rated(41, 2.0, 2)), (Rated(42, 4.0, 3),))
    split = ReplaySplit(pd.DataFrame(), pd.DataFrame(), (user1, user2), (new,), {})
    answers = {
        # a: the first-half movie 20 ranks first; removed, 10 is a hit at rank 1
        "a": {1: _answer([20, 10, 30]), 2: _answer([31, 30])},
        "b": {1: _answer([10, 11]), 2: _answer([33], degraded=True)},
        "c": {3: _answer([41, 99, 42], cold=True)},
        "d": {3: _answer([42, 98])},
    }
    report = score({"answers": answers}, split, k=2, like_threshold=4.0)
    arms, deltas = report["arms"], report["deltas"]
    # user 2 is degraded in b: out of both a and b
    assert arms["a"]["scored_users"] == arms["b"]["scored_users"] == 1
    assert arms["a"]["left_out_degraded"] == 1 and arms["b"]["degraded"] == 1
    ideal = 1 / math.log(2) + 1 / math.log(3)  # two relevant movies, k = 2
    assert arms["a"]["ndcg@2"] == pytest.approx((1 / math.log(2)) / ideal)
    assert arms["a"]["recall@2"] == pytest.approx(0.5)
    # as served, a's top 2 is [20, 10]: the hit is at rank 2
    assert arms["a"]["as_served"]["ndcg@2"] == pytest.approx((1 / math.log(3)) / ideal)
    assert arms["b"]["ndcg@2"] == pytest.approx(1.0) and arms["b"]["recall@2"] == 1.0
    assert arms["a"]["answers_holding_first_half"] == 2  # users 1 (20) and 2 (30)
    assert arms["b"]["answers_holding_first_half"] == arms["b"]["answers_holding_posted"] == 0
    assert arms["a"]["answers_holding_posted"] is None
    assert deltas["b-a"]["ndcg@2"] == pytest.approx(1.0 - (1 / math.log(2)) / ideal)
    assert deltas["b-a"]["per_user"]["better"] == 1 and deltas["b-a"]["per_user"]["users"] == 1
    # new user: c [41, 99, 42] -> 41 removed -> [99, 42]: hit at rank 2 of one relevant
    assert arms["c"]["ndcg@2"] == pytest.approx(math.log(2) / math.log(3))
    assert arms["c"]["cold_start"] == 1 and arms["d"]["cold_start"] == 0
    assert arms["d"]["ndcg@2"] == pytest.approx(1.0)
    assert arms["d"]["answers_holding_posted"] == 0  # the like, 40, is gone
    assert deltas["d-c"]["recall@2"] == pytest.approx(0.0)  # both found movie 42


def test_paired_change_counts_users_better_worse_and_same() -> None:
    relevant = {1: {10}, 2: {20}, 3: {30}, 4: set()}
    before = {1: [10], 2: [99], 3: [30], 4: [1]}
    after = {1: [99], 2: [20], 3: [30], 4: [2]}
    change = paired_change(before, after, relevant, k=1)
    assert {key: change[key] for key in ("users", "better", "worse", "same")} == {
        "users": 3,  # user 4 has nothing relevant
        "better": 1,
        "worse": 1,
        "same": 1,
    }
    assert change["mean"] == pytest.approx(0.0)
    assert change["stderr"] == pytest.approx(math.sqrt(1.0) / math.sqrt(3))
