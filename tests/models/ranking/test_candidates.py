"""Candidate lists as the Controller makes them; seeds as Feast serves them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from models.features import build_feature_tables
from models.ranking.candidates import (
    SOURCES,
    build_candidates,
    candidate_table,
    content_lists,
    liked_seeds,
    ranked_ids,
    retrieval_lists,
)
from models.ranking.config import CandidateConfig
from movierec.stages import SOURCES as CONTROLLER_SOURCES

DAY = 86_400


def _ratings() -> pd.DataFrame:
    rows = [
        # user, movie, rating, time: user 1 has ties on rating broken by recency, then id
        (1, 10, 5.0, 10 * DAY),
        (1, 11, 5.0, 12 * DAY),
        (1, 12, 4.0, 12 * DAY),
        (1, 13, 4.0, 12 * DAY),
        (1, 14, 3.0, 13 * DAY),
        (1, 15, 4.5, 2 * DAY),
        (2, 10, 2.0, 3 * DAY),  # user 2 likes nothing: no seeds
        (2, 11, 3.5, 4 * DAY),
        (3, 12, 4.0, 20 * DAY),
    ]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"]).astype(
        {"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"}
    )


def _movies() -> pd.DataFrame:
    ids = range(10, 16)
    return pd.DataFrame(
        {
            "movie_id": pd.Series(list(ids), dtype="int64"),
            "title": [f"M{i}" for i in ids],
            "year": pd.array([1990] * 6, dtype="Int64"),
            "genres": [["Drama"]] * 6,
        }
    )


def test_sources_are_the_controllers() -> None:
    assert SOURCES == CONTROLLER_SOURCES


def test_seeds_match_feast_liked_movie_ids() -> None:
    ratings = _ratings()
    seeds = liked_seeds(ratings, n_seeds=3, like_threshold=4.0)
    ours = {u: g["movie_id"].tolist() for u, g in seeds.groupby("user_id", sort=True)}
    assert ours == {1: [11, 10, 15], 3: [12]}

    # What the Controller reads: the newest user_history row of each user.
    history = build_feature_tables(ratings, _movies()).user_history
    newest: dict[int, list[int]] = {}
    for user in (1, 2, 3):
        rows = history.filter(pc.equal(history.column("user_id"), user)).to_pandas()
        newest[user] = list(rows.sort_values("event_timestamp").iloc[-1]["liked_movie_ids"])
    for user in (1, 2, 3):
        assert ours.get(user, []) == newest[user][:3]


def test_build_candidates_merges_filters_and_cuts() -> None:
    users = [1, 2]
    seen = {1: {5}, 2: set()}
    ids = np.array([[5, 6, 7, 8], [6, 7, 8, 9]])
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    retrieval = retrieval_lists(users, ids, scores, seen)
    assert retrieval[1] == [(6, 3.0), (7, 2.0), (8, 1.0)]  # seen movie 5 dropped
    table = pd.DataFrame(
        {"user_id": [1, 1, 2], "rank": [1, 2, 1], "movie_id": [9, 6, 1], "score": [0.9, 0.8, 0.7]}
    )
    content = content_lists(table)
    config = CandidateConfig(retrieval_n=4, content_n=2, max_ranked=3, content_weight=0.5)
    out = build_candidates(users, {"retrieval": retrieval, "content": content}, seen, config)
    # user 1: 6 (retrieval 1, content 2 at half weight), 7 (retrieval 2),
    # 9 (content 1 at half weight)
    assert ranked_ids(out)[1] == [6, 7, 8]
    assert out[1][0].source_ranks == {"retrieval": 1, "content": 2}
    assert len(out[2]) == 3
    long = candidate_table(out)
    assert long.columns.tolist() == ["user_id", "movie_id", "position"]
    assert long[long.user_id == 1].position.tolist() == [1, 2, 3]
