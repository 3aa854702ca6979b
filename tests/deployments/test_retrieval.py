"""The Retrieval deployment's class in process, on tiny real artifacts (no Ray)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deployments.common import StageUnavailableError
from deployments.retrieval import Retrieval
from movierec.payloads import RetrievalCandidates, ScoredMovies
from tests.deployments._inprocess import TinyStage, tf_threads, tiny_stage

pytestmark = pytest.mark.integration

RetrievalClass = Retrieval.func_or_class


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStage]:
    with tiny_stage(tmp_path_factory) as built:
        yield built


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_candidates_are_the_runtimes_top_n(
    built: TinyStage, loop: asyncio.AbstractEventLoop
) -> None:
    from models.retrieval.runtime import RetrievalRuntime

    tiny = built.artifacts
    stage = RetrievalClass(built.context, *tf_threads())
    runtime = RetrievalRuntime.load(tiny.layout, *tf_threads())
    loop.run_until_complete(stage.reconfigure({}))
    user = int(tiny.train["user_id"].iloc[0])
    got = loop.run_until_complete(stage.candidates(user, 20)).retrieval
    assert isinstance(got, ScoredMovies) and len(got) == 20
    want = runtime.candidates(user, 20)
    np.testing.assert_array_equal(got.movie_ids, want.movie_ids)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-6)
    assert (np.diff(got.scores) <= 0).all()  # best first

    loop.run_until_complete(stage.reconfigure({"max_n": 5}))
    clipped = loop.run_until_complete(stage.candidates(user, 20, 20))
    assert len(clipped.retrieval) == len(clipped.itemcf) == 5

    health = loop.run_until_complete(stage.health())
    assert health["status"] == "ok"
    detail = health["detail"]
    assert detail["k"] == runtime.k and detail["known_users"] == len(runtime.users) > 0
    assert detail["artifacts"] == tiny.layout.root.resolve().name and detail["error"] is None
    assert detail["max_n"] == 5 and detail["model_version"] == "" and detail["faults"] is None
    assert detail["itemcf"]["movies"] > 0 and detail["itemcf"]["method"] == "ease"


def test_the_itemcf_list_is_the_item_to_item_runtimes_unseen_top_n(
    built: TinyStage, loop: asyncio.AbstractEventLoop
) -> None:
    from models.itemcf.runtime import ItemCFRuntime

    tiny = built.artifacts
    stage = RetrievalClass(built.context, *tf_threads())
    loop.run_until_complete(stage.reconfigure({}))
    user = int(tiny.train["user_id"].iloc[0])
    both = loop.run_until_complete(stage.candidates(user, 5, 20))
    got = both.itemcf
    want = ItemCFRuntime.load(tiny.layout.itemcf_dir).candidates(user, 20)
    assert len(got) == 20
    np.testing.assert_array_equal(got.movie_ids, want.movie_ids)
    seen = set(tiny.train.loc[tiny.train["user_id"] == user, "movie_id"].tolist())
    assert not seen & set(got.movie_ids.tolist())
    assert len(both.retrieval) == 5  # the two-tower list of the same call
    unknown = loop.run_until_complete(stage.candidates(10**9, 5, 20))
    assert len(unknown.itemcf) == 0
    assert len(loop.run_until_complete(stage.candidates(user, 5)).itemcf) == 0  # not asked
    loop.run_until_complete(stage.check_health())


def test_a_new_model_version_reloads_the_model(
    built: TinyStage, loop: asyncio.AbstractEventLoop
) -> None:
    stage = RetrievalClass(built.context, *tf_threads())
    loop.run_until_complete(stage.reconfigure({"model_version": "a"}))
    first = stage._model.current
    loop.run_until_complete(stage.reconfigure({"model_version": "a", "max_n": 50}))
    assert stage._model.current is first  # same label: no reload
    loop.run_until_complete(stage.reconfigure({"model_version": "b"}))
    assert stage._model.current is not first
    health = loop.run_until_complete(stage.health())
    assert health["detail"]["model_version"] == "b"


def test_without_a_model_the_stage_is_unavailable(
    built: TinyStage, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    context = built.context.model_copy(update={"artifacts_dir": tmp_path / "no-artifacts"})
    stage = RetrievalClass(context, *tf_threads())
    loop.run_until_complete(stage.reconfigure({}))
    with pytest.raises(StageUnavailableError, match="retrieval model unavailable"):
        loop.run_until_complete(stage.candidates(1, 10))
    health = loop.run_until_complete(stage.health())
    assert health["status"] == "unavailable"
    assert health["detail"]["error"].startswith("FileNotFoundError")
    loop.run_until_complete(stage.check_health())  # not built is no reason to replace it


def test_a_user_the_model_does_not_know_is_answered_from_their_liked_movies(
    built: TinyStage, loop: asyncio.AbstractEventLoop
) -> None:
    """A new user's likes (posted as events, applied to the online store) are the two-tower
    query, and every movie they rated is the item-to-item source's history."""
    import time

    from deployments.events import Events
    from models.retrieval.runtime import RetrievalRuntime
    from movierec.events import Event

    tiny = built.artifacts
    runtime = RetrievalRuntime.load(tiny.layout, *tf_threads())
    assert runtime.liked is not None and runtime.itemcf is not None
    new_user = 700_001
    liked = [int(m) for m in tiny.train["movie_id"].unique()[:3]]
    stage = RetrievalClass(built.context, *tf_threads())
    events = Events.func_or_class(built.context)

    async def scenario() -> tuple[RetrievalCandidates, RetrievalCandidates]:
        await stage.reconfigure({})
        oov = await stage.candidates(new_user, 20, 20)  # no likes yet: the model's OOV answer
        await events.reconfigure({})
        now = time.time()
        await events.ingest([Event(new_user, m, "rating", 5.0, now, now) for m in liked])
        started = time.monotonic()
        while (answer := await stage.candidates(new_user, 20, 20)).retrieval.movie_ids.tolist() == (
            oov.retrieval.movie_ids.tolist()
        ):
            assert time.monotonic() - started < 10.0, "likes not used"
            await asyncio.sleep(0.05)
        await events.reconfigure({"apply": False})
        return oov, answer

    oov, answer = loop.run_until_complete(scenario())
    np.testing.assert_array_equal(
        oov.retrieval.movie_ids, runtime.candidates(new_user, 20).movie_ids
    )
    assert len(oov.itemcf) == 0  # no history: the item-to-item source has nothing to go on
    want = runtime.liked.candidates(liked, 20)
    np.testing.assert_array_equal(answer.retrieval.movie_ids, want.movie_ids)
    related = runtime.itemcf.from_history(liked, 20)
    assert len(related) > 0
    np.testing.assert_array_equal(answer.itemcf.movie_ids, related.movie_ids)
    assert not set(liked) & set(answer.itemcf.movie_ids.tolist())


def test_online_itemcf_history_counts_a_posted_rating_at_once(
    built: TinyStage, loop: asyncio.AbstractEventLoop
) -> None:
    """`itemcf_history: online`: a known user's item-to-item list is scored from the online
    seen set (training history plus posted events); `training` keeps the training row."""
    import time

    from deployments.events import Events
    from models.itemcf.runtime import ItemCFRuntime
    from movierec.events import Event

    tiny = built.artifacts
    itemcf = ItemCFRuntime.load(tiny.layout.itemcf_dir)
    user = int(tiny.train["user_id"].iloc[1])
    seen = set(tiny.train.loc[tiny.train["user_id"] == user, "movie_id"].tolist())
    stage = RetrievalClass(built.context, *tf_threads())
    events = Events.func_or_class(built.context)

    async def scenario() -> tuple[ScoredMovies, ScoredMovies, ScoredMovies, int]:
        await stage.reconfigure({"itemcf_history": "online"})
        before = (await stage.candidates(user, 5, 20)).itemcf
        watched = int(before.movie_ids[0])
        await events.reconfigure({})
        now = time.time()
        await events.ingest([Event(user, watched, "watch", None, now, now)])
        started = time.monotonic()
        while watched in (after := (await stage.candidates(user, 5, 20)).itemcf).movie_ids:
            assert time.monotonic() - started < 10.0, "the watch did not reach the list"
            await asyncio.sleep(0.05)
        await events.reconfigure({"apply": False})
        await stage.reconfigure({"itemcf_history": "training"})
        training = (await stage.candidates(user, 5, 20)).itemcf
        return before, after, training, watched

    before, after, training, watched = loop.run_until_complete(scenario())
    # No events yet: the online seen set is the training row, so the lists are the same.
    np.testing.assert_array_equal(before.movie_ids, itemcf.candidates(user, 20).movie_ids)
    np.testing.assert_array_equal(
        after.movie_ids, itemcf.from_history(seen | {watched}, 20).movie_ids
    )
    np.testing.assert_array_equal(training.movie_ids, itemcf.candidates(user, 20).movie_ids)
