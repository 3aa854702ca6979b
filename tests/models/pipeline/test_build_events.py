"""`make artifacts` and the event log: a full build learns from the logged events (with their
times, in its fingerprint); an eval build never sees them. Runs the real build's data
preparation and its first steps (splits, catalog) on a slice of ml-100k: nothing is trained."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest

from models.data import MovieLens
from models.features.event_log import write_part, write_tombstone
from models.pipeline.build import BuildOptions, prepare, steps_for
from models.pipeline.runner import PipelineError, run_steps
from movierec.events import Event
from movierec.manifest import Manifest

NOW = time.time()


def _run(options: BuildOptions, dataset: MovieLens) -> tuple[Manifest, pd.DataFrame, list[str]]:
    """The build's first two steps (splits, catalog); its manifest, training split, statuses."""
    prepared = prepare(options, dataset)
    prepared.layout.root.parent.mkdir(parents=True, exist_ok=True)
    statuses: list[str] = []
    manifest = run_steps(
        steps_for(prepared.layout, options)[:2],
        prepared.layout.root,
        prepared.manifest,
        state=prepared.state(),
        on_step=lambda _, status: statuses.append(status),
    )
    return manifest, pd.read_parquet(prepared.layout.splits_dir / "train.parquet"), statuses


def _posted(user_id: int, movies: list[int]) -> list[tuple[str, Event]]:
    """The user's ratings as the exporter writes them (entry ids in log order)."""
    ms = int(NOW * 1000)
    return [
        (f"{ms + i}-0", Event(user_id, movie, "rating", 5.0, NOW - 60 + i, NOW + i))
        for i, movie in enumerate(movies)
    ]


def test_a_full_build_learns_the_posted_ratings_and_an_eval_build_never_does(
    tmp_path: Path, small_movielens: MovieLens
) -> None:
    events_dir = tmp_path / "events" / "ml_100k_full"
    ratings = small_movielens.ratings
    user_id = int(ratings["user_id"].iloc[0])
    unseen = sorted(
        set(small_movielens.movies["movie_id"])
        - set(ratings.loc[ratings["user_id"] == user_id, "movie_id"])
    )
    posted = _posted(user_id, [int(m) for m in unseen[:3]])

    def options(mode: str, artifacts: str) -> BuildOptions:
        return BuildOptions("ml-100k", mode, tmp_path / artifacts, events_dir=events_dir)  # type: ignore[arg-type]

    # No events yet: the full build's data is the dataset's (no events change nothing).
    plain = prepare(BuildOptions("ml-100k", "full", tmp_path / "a"), small_movielens).manifest
    empty, train, _ = _run(options("full", "full"), small_movielens)
    assert empty.data_hash == plain.data_hash and len(train) == len(ratings)
    assert empty.events["events"] == 0 and empty.events["digest"] == ""

    write_part(events_dir, posted)
    full, train, statuses = _run(options("full", "full"), small_movielens)
    assert statuses == ["built", "built"]  # new events: the steps are rebuilt
    assert full.data_hash != empty.data_hash
    assert full.steps["splits"].fingerprint != empty.steps["splits"].fingerprint
    assert full.events["events"] == 3 and full.events["digest"]
    mine = train[(train["user_id"] == user_id) & train["movie_id"].isin(unseen[:3])]
    assert sorted(mine["movie_id"]) == unseen[:3] and set(mine["rating"]) == {5.0}
    assert sorted(mine["timestamp"]) == [int(NOW - 60 + i) for i in range(3)]  # event times
    assert len(train) == len(ratings) + 3

    _, _, statuses = _run(options("full", "full"), small_movielens)
    assert statuses == ["skipped", "skipped"]  # the same events: nothing to rebuild

    # The eval build is given the same log and ignores it: same data, none of the events.
    no_log = prepare(BuildOptions("ml-100k", "eval", tmp_path / "b"), small_movielens).manifest
    evaluated, eval_train, _ = _run(options("eval", "eval"), small_movielens)
    assert evaluated.data_hash == no_log.data_hash and evaluated.events == {}
    assert not ((eval_train["user_id"] == user_id) & eval_train["movie_id"].isin(unseen[:3])).any()
    assert eval_train["timestamp"].max() <= ratings["timestamp"].max()

    # DELETE /users/{id}/events leaves a tombstone: the next full build forgets them.
    write_tombstone(events_dir, user_id, posted[-1][0])
    forgotten, train, statuses = _run(options("full", "full"), small_movielens)
    assert statuses == ["built", "built"] and forgotten.data_hash == empty.data_hash
    assert len(train) == len(ratings)


def test_an_unreadable_event_log_stops_the_build_naming_it(
    tmp_path: Path, small_movielens: MovieLens
) -> None:
    events_dir = tmp_path / "events"
    events_dir.mkdir()
    (events_dir / "part-1-0_2-0.parquet").write_bytes(b"not parquet")
    options = BuildOptions("ml-100k", "full", tmp_path / "artifacts", events_dir=events_dir)
    with pytest.raises(PipelineError, match=r"reading the event log .*events"):
        prepare(options, small_movielens)
    # an eval build never opens it
    prepare(BuildOptions("ml-100k", "eval", tmp_path / "a", events_dir=events_dir), small_movielens)


@pytest.mark.slow
def test_every_step_of_a_full_build_learns_from_the_posted_ratings(
    tmp_path: Path, small_movielens: MovieLens
) -> None:
    from models.pipeline.build import build

    events_dir = tmp_path / "events"
    ratings = small_movielens.ratings
    user_id = int(ratings["user_id"].iloc[0])
    rated = set(ratings.loc[ratings["user_id"] == user_id, "movie_id"])
    posted = [int(m) for m in sorted(set(small_movielens.movies["movie_id"]) - rated)[:3]]
    write_part(events_dir, _posted(user_id, posted))
    options = BuildOptions(
        "ml-100k",
        "full",
        tmp_path / "artifacts",
        retrieval={"epochs": 1},
        ranking={"epochs": 1},
        events_dir=events_dir,
    )
    manifest = build(options, small_movielens)
    root = tmp_path / "artifacts" / "ml-100k" / "full"
    assert manifest.events["events"] == 3
    history = pd.read_parquet(root / "itemcf" / "history.parquet")  # item-to-item
    assert set(posted) <= set(history.loc[history["user_id"] == user_id, "movie_id"])
    features = pd.read_parquet(root / "features" / "user_history.parquet")  # Feast offline
    latest = features[features["user_id"] == user_id].sort_values("event_timestamp").iloc[-1]
    assert set(posted) <= set(latest["seen_movie_ids"]) and set(posted) <= set(
        latest["liked_movie_ids"]
    )
    assert latest["event_timestamp"] > pd.Timestamp(NOW - 60, unit="s", tz="UTC")
