"""The Content stage in process (`Content.func_or_class`) on tiny real artifacts in Redis.

Expected answers come from the exact numpy search over the tree's content embeddings (with
EF_RUNTIME above the catalogue size, HNSW is exact) and the training split's likes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis
from pydantic import SecretStr

from deployments.common import StageUnavailableError
from deployments.content import Content
from models.content.embeddings import embedding_matrix, read_embeddings
from models.content.exact import ExactIndex
from models.content.index import resolve_alias
from movierec.payloads import CandidateFilter, ScoredMovies
from tests.deployments._inprocess import TinyStage, liked_and_seen, tiny_stage

pytestmark = pytest.mark.integration

EXACT = {"ef_runtime": 2000}
"""EF_RUNTIME above the tiny catalogue: the KNN visits every movie."""


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyStage]:
    with tiny_stage(tmp_path_factory) as built:
        yield built


@pytest.fixture(scope="module")
def exact(stage: TinyStage) -> ExactIndex:
    return ExactIndex(*embedding_matrix(read_embeddings(stage.artifacts.layout.content_dir)))


def _user_with_likes(stage: TinyStage, at_least: int) -> int:
    for user_id in sorted(set(stage.artifacts.train["user_id"].tolist())):
        if len(liked_and_seen(stage.artifacts, int(user_id))[0]) >= at_least:
            return int(user_id)
    raise AssertionError("no such user")


def _run(stage: TinyStage, config: dict[str, Any], *calls: Any) -> list[Any]:
    """Answers of `calls` (name, *args) on one configured Content, on one event loop."""

    async def scenario() -> list[Any]:
        content = Content.func_or_class(stage.context)
        await content.reconfigure(config)
        return [await getattr(content, name)(*args) for name, *args in calls]

    return asyncio.run(scenario())


def _ids(movies: ScoredMovies) -> list[int]:
    return [int(m) for m in movies.movie_ids]


@pytest.mark.parametrize("aggregation", ["sum", "max"])
def test_candidates_are_the_nearest_unseen_movies_to_the_users_top_likes(
    stage: TinyStage, exact: ExactIndex, aggregation: str
) -> None:
    user_id = _user_with_likes(stage, 6)
    liked, seen = liked_and_seen(stage.artifacts, user_id)
    config = {**EXACT, "aggregation": aggregation, "n_seeds": 5}
    (movies,) = _run(stage, config, ("candidates", user_id, 20, CandidateFilter()))
    assert isinstance(movies, ScoredMovies) and len(movies) == 20
    # Seeds: the 5 best liked movies (n_seeds); never a seen movie.
    reference = exact.recommend_for_seeds(liked[:5], 20, seen, None, aggregation)  # type: ignore[arg-type]
    assert _ids(movies) == [movie for movie, _ in reference]
    np.testing.assert_allclose(movies.scores, [s for _, s in reference], atol=1e-5)


def test_candidates_honour_the_request_filter(stage: TinyStage) -> None:
    user_id = _user_with_likes(stage, 3)
    _, seen = liked_and_seen(stage.artifacts, user_id)
    movies_table = stage.artifacts.dataset.movies.set_index("movie_id")
    everything, _ = _run(stage, EXACT, ("candidates", user_id, 10, CandidateFilter()), ("health",))
    exclude = frozenset(_ids(everything)[:3])
    allowed = CandidateFilter(exclude=exclude, genres=("Drama",), year_range=(1990, None))
    (movies,) = _run(stage, EXACT, ("candidates", user_id, 10, allowed))
    assert len(movies) == 10
    for movie_id in _ids(movies):
        assert movie_id not in exclude | seen
        row = movies_table.loc[movie_id]
        assert "Drama" in row["genres"] and row["year"] >= 1990


def test_no_candidates_for_an_unknown_user_or_no_room(stage: TinyStage) -> None:
    user_id = _user_with_likes(stage, 1)
    unknown, none = _run(
        stage,
        {},
        ("candidates", 999_999, 10, CandidateFilter()),
        ("candidates", user_id, 0, CandidateFilter()),
    )
    assert len(unknown) == 0 and len(none) == 0


def test_similar_and_health(stage: TinyStage, exact: ExactIndex) -> None:
    movie_id = int(exact.movie_ids[0])
    similar, unknown, bounded, health = _run(
        stage,
        {**EXACT, "max_k": 7},
        ("similar", movie_id, 5),
        ("similar", 999_999, 5),
        ("similar", movie_id, 50),
        ("health",),
    )
    assert _ids(similar) == [movie for movie, _ in exact.similar_movies(movie_id, 5)]
    assert unknown is None and len(bounded) == 7
    assert health["status"] == "ok"
    assert health["detail"]["num_docs"] == len(exact) and health["detail"]["n_seeds"] == 10
    assert health["detail"]["reconnects"] == 0


def test_a_redis_without_the_index_makes_the_stage_unavailable(stage: TinyStage) -> None:
    client = redis.Redis.from_url(stage.redis_url)
    alias = stage.artifacts.layout.content_index_alias
    target = resolve_alias(client, alias)
    assert target is not None
    client.execute_command("FT.ALIASDEL", alias)

    async def scenario() -> tuple[dict[str, Any], ScoredMovies | None, dict[str, Any]]:
        content = Content.func_or_class(stage.context)
        await content.reconfigure({})
        with pytest.raises(StageUnavailableError, match="vector search unavailable"):
            await content.similar(1, 5)
        down = await content.health()
        await content.check_health()  # the index is gone for everyone: no strike
        client.execute_command("FT.ALIASADD", alias, target)
        await asyncio.sleep(1.05)  # the retry interval
        return down, await content.similar(1, 5), await content.health()

    try:
        down, similar, up = asyncio.run(scenario())
    finally:
        if resolve_alias(client, alias) is None:
            client.execute_command("FT.ALIASADD", alias, target)
        client.close()
    assert down["status"] == "unavailable"
    assert similar is not None and len(similar) == 5 and up["status"] == "ok"


def test_an_unreachable_redis_makes_the_stage_unavailable(stage: TinyStage) -> None:
    dead = stage.context.model_copy(update={"redis_url": SecretStr("redis://127.0.0.1:1/0")})

    async def scenario() -> dict[str, Any]:
        content = Content.func_or_class(dead)
        await content.reconfigure({})
        with pytest.raises(StageUnavailableError):
            await content.candidates(1, 10, CandidateFilter())
        await content.check_health()  # a fresh connection fails too: no strike
        result: dict[str, Any] = await content.health()
        return result

    health = asyncio.run(scenario())
    assert health["status"] == "unavailable" and "redis://" not in str(health)
