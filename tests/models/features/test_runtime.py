"""The features runtime (`models.features.runtime`): online reads of the hand-computed
`_tiny` store, materialized into a real Redis (fixtures in conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from models.features import OnlineFeatures, response_columns
from movierec.payloads import UserProfile
from tests.models.features import _tiny
from tests.models.features._tiny import S2, assert_row, expected_movie, expected_user

pytestmark = pytest.mark.integration


def test_online_user_features_equal_the_last_snapshot(reader: OnlineFeatures):
    for user in (1, 2, 3):
        assert_row(reader.get_user_features(user), expected_user(user, S2))
    # user 4 never rated: demographics only
    four = reader.get_user_features(4)
    assert four["user_rating_count"] is None and four["user_age"] == 19
    assert all(v is None for v in reader.get_user_features(999).values())


def test_online_movie_features_equal_the_last_snapshot(reader: OnlineFeatures):
    ids = [3, 1, 5, 2, 4, 1]
    columns = reader.get_movie_features(ids)
    assert list(columns) == reader.movie_names
    for i, movie in enumerate(ids):
        assert_row({k: v[i] for k, v in columns.items()}, expected_movie(movie, S2))


def test_unknown_movie_falls_back_to_per_view_reads(reader: OnlineFeatures):
    columns = reader.get_movie_features([2, 424242])
    assert_row({k: v[0] for k, v in columns.items()}, expected_movie(2, S2))
    assert all(v[1] is None for v in columns.values())
    assert reader.get_movie_features([]) == {name: [] for name in reader.movie_names}


def test_precomputed_reads_equal_feast_to_dict(reader: OnlineFeatures):
    ids = [1, 2, 3, 4, 5]
    fast = reader.get_movie_features(ids)
    plain = reader.store.get_online_features(reader.movie_refs, [{"movie_id": m} for m in ids])
    assert fast == {k: v for k, v in plain.to_dict().items() if k != "movie_id"}
    user = reader.store.get_online_features(reader.user_refs, [{"user_id": 1}]).to_dict()
    assert reader.get_user_features(1) == {k: v[0] for k, v in user.items() if k != "user_id"}
    assert response_columns(
        reader.store.get_online_features(reader.user_refs, {"user_id": [1]}), skip=("user_id",)
    ) == {k: v for k, v in user.items() if k != "user_id"}


def test_async_reads_equal_sync(reader: OnlineFeatures, fresh: OnlineFeatures):
    async def read():
        return (
            await fresh.get_user_features_async(2),
            await fresh.get_movie_features_async([4, 1, 777]),
            await fresh.user_history_async(1),
        )

    user, movies, (liked, seen) = asyncio.run(read())
    assert user == reader.get_user_features(2)
    assert movies == reader.get_movie_features([4, 1, 777])
    history = reader.get_user_history(1)
    assert liked == tuple(history["liked_movie_ids"])
    assert seen == frozenset(history["seen_movie_ids"])


def test_online_history(reader: OnlineFeatures):
    for user in (1, 2, 3):
        _, _, _, liked, seen = _tiny.USER_AT[user][S2]
        assert reader.get_user_history(user) == {"liked_movie_ids": liked, "seen_movie_ids": seen}
    assert reader.get_user_history(999) == {"liked_movie_ids": [], "seen_movie_ids": []}


def test_shared_reader_is_one_per_process(redis_url: str, built: Path):
    a = OnlineFeatures.shared(redis_url, built / "registry.db")
    assert OnlineFeatures.shared(redis_url, str(built / "registry.db")) is a


def test_reader_without_the_precomputed_service_reads_per_view(reader: OnlineFeatures):
    plain = OnlineFeatures(reader.store, movie_service=None)
    ids = [5, 4, 3, 2, 1, 31337]
    assert plain.get_movie_features(ids) == reader.get_movie_features(ids)
    missing = OnlineFeatures(reader.store, movie_service="no_such_service")
    assert missing.get_movie_features(ids) == reader.get_movie_features(ids)


@pytest.fixture
def fresh(redis_url: str, built: Path) -> OnlineFeatures:
    """A reader for one `asyncio.run` (Feast's async Redis client is bound to its loop)."""
    return OnlineFeatures.open(redis_url, built / "registry.db")


def test_user_profile_is_one_read_of_features_and_history(fresh: OnlineFeatures):
    profile = asyncio.run(fresh.user_profile(1))
    assert isinstance(profile, UserProfile) and profile.user_id == 1
    assert list(profile.features) == fresh.user_names  # the ranker's features, no history
    assert_row(dict(profile.features), expected_user(1, S2))
    # user 1 rated 1 (5 stars, B+1d), 2 (3 stars), 3 (4 stars, B+8d): liked best rated first
    assert profile.liked == (1, 3)
    assert profile.seen == frozenset({1, 2, 3})


def test_user_profile_of_a_user_without_ratings_or_unknown(fresh: OnlineFeatures):
    async def read() -> tuple[UserProfile | None, UserProfile | None]:
        return await fresh.user_profile(4), await fresh.user_profile(999)

    four, unknown = asyncio.run(read())
    assert four is not None and four.liked == () and four.seen == frozenset()  # demographics
    assert four.features["user_age"] == 19 and four.features["user_rating_count"] is None
    assert unknown is None  # no row at all: cold start


def test_user_history_async(fresh: OnlineFeatures):
    async def read() -> list[tuple[tuple[int, ...], frozenset[int]]]:
        return [await fresh.user_history_async(user) for user in (1, 2, 3, 999)]

    histories = asyncio.run(read())
    for user, history in zip((1, 2, 3), histories, strict=False):
        _, _, _, liked, seen = _tiny.USER_AT[user][S2]
        assert history == (tuple(liked), frozenset(seen))
    assert histories[3] == ((), frozenset())


def test_readers_of_one_registry_share_it_and_keep_feasts_request_cache(
    redis_url: str, built: Path
):
    """Two readers in one process (the monolith's stages) alternate reads without clearing
    Feast's process-wide request cache: it is keyed by the registry's load time, so a
    second registry object would clear it on every alternation."""
    from feast import utils as feast_utils

    a = OnlineFeatures.open(redis_url, built / "registry.db")
    b = OnlineFeatures.open(redis_url, str(built / "registry.db"))
    assert a.store is not b.store and a.store.registry is b.store.registry
    assert a.get_user_features(1) == b.get_user_features(1)
    b.get_user_history(1)
    a.get_user_features(2)
    resolved = {key[0] for key in feast_utils._feature_resolution_cache}
    assert {tuple(a.user_refs), tuple(a.history_refs)} <= resolved
