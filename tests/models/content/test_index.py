"""The versioned HNSW index: schema, loading, atomic alias swap, failed rebuilds."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import redis

from models.content.client import RedisTransport, VectorSearch
from models.content.index import (
    IndexBuildError,
    IndexConfig,
    build_index,
    index_info,
    list_versions,
    resolve_alias,
)
from tests.models.content._helpers import synthetic_catalogue

pytestmark = pytest.mark.integration


def _attributes(info: dict) -> dict[str, dict[str, object]]:
    out = {}
    for attribute in info["attributes"]:
        pairs = [x.decode() if isinstance(x, bytes) else x for x in attribute]
        fields = dict(zip(pairs[::2], pairs[1::2], strict=False))
        out[str(fields["attribute"])] = fields
    return out


def test_schema_and_hash_layout(content_redis: redis.Redis, index_config: IndexConfig) -> None:
    catalogue = synthetic_catalogue(50)
    build = build_index(content_redis, catalogue, config=index_config, version="v1")
    assert build.index_name == f"{index_config.alias}:v1"
    assert build.num_docs == 50 and build.previous is None

    info = index_info(content_redis, index_config.alias)
    assert info["index_name"] == build.index_name
    attrs = _attributes(info)
    vector = attrs["embedding"]
    assert (vector["type"], vector["algorithm"]) == ("VECTOR", "HNSW")
    assert (vector["data_type"], vector["dim"], vector["distance_metric"]) == (
        "FLOAT32", 384, "COSINE",
    )  # fmt: skip
    assert (vector["M"], vector["ef_construction"]) == (16, 200)
    assert (attrs["genres"]["type"], attrs["genres"]["SEPARATOR"]) == ("TAG", "|")
    assert attrs["year"]["type"] == attrs["movie_id"]["type"] == "NUMERIC"
    assert attrs["title"]["type"] == "TEXT"
    assert (attrs["movie_id_tag"]["identifier"], attrs["movie_id_tag"]["type"]) == (
        "movie_id",
        "TAG",
    )

    row = catalogue.iloc[4]
    stored = content_redis.hgetall(f"{index_config.prefix('v1')}{row.movie_id}")
    assert stored[b"movie_id"] == str(row.movie_id).encode()
    assert stored[b"genres"].decode().split("|") == row.genres
    assert int(stored[b"year"]) == row.year
    np.testing.assert_array_equal(np.frombuffer(stored[b"embedding"], "<f4"), row.embedding)
    no_meta = content_redis.hgetall(f"{index_config.prefix('v1')}1")
    assert b"year" not in no_meta and b"genres" not in no_meta


def test_alias_swap_keeps_queries_working(
    content_redis: redis.Redis, index_config: IndexConfig
) -> None:
    v1 = synthetic_catalogue(400, seed=1)
    build_index(content_redis, v1, config=index_config, version="v1")
    transport, search = RedisTransport(content_redis), VectorSearch(index_config.alias)
    before = transport.run(search.similar_movies(5, 10))
    assert len(before) == 10

    errors: list[BaseException] = []
    short: list[int] = []
    done = threading.Event()
    queries = 0

    def hammer() -> None:
        nonlocal queries
        while not done.is_set():
            try:
                hits = transport.run(search.similar_movies(5, 10, with_metadata=False))
                if len(hits) != 10:
                    short.append(len(hits))
                queries += 1
            except BaseException as exc:  # any failure is the bug under test
                errors.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()

    def wait_for_queries(count: int) -> None:
        deadline = time.monotonic() + 30
        while queries < count and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)

    builds = []
    try:
        for seed, version in enumerate(["v2", "v3", "v4"], start=2):
            catalogue = synthetic_catalogue(400, seed=seed)
            wait_for_queries(queries + 5)  # queries hit every version, before and after swaps
            builds.append(
                build_index(content_redis, catalogue, config=index_config, version=version)
            )
        wait_for_queries(queries + 5)
    finally:
        done.set()
        thread.join()

    assert errors == [] and short == []
    assert queries >= 20
    assert [b.previous for b in builds] == [f"{index_config.alias}:{v}" for v in ("v1", "v2", "v3")]
    assert all(b.previous_dropped for b in builds)
    assert resolve_alias(content_redis, index_config.alias) == f"{index_config.alias}:v4"
    assert list_versions(content_redis, index_config) == ["v4"]
    for old in ("v1", "v2", "v3"):
        assert content_redis.keys(f"{index_config.prefix(old)}*") == []
    after = transport.run(search.similar_movies(5, 10))
    assert [h.movie_id for h in after] != [h.movie_id for h in before]  # v4's vectors now


def test_rebuilding_the_live_version_is_refused(
    content_redis: redis.Redis, index_config: IndexConfig
) -> None:
    build_index(content_redis, synthetic_catalogue(20), config=index_config, version="v1")
    with pytest.raises(IndexBuildError, match="live"):
        build_index(content_redis, synthetic_catalogue(20), config=index_config, version="v1")


def test_failed_build_leaves_the_alias_untouched(
    content_redis: redis.Redis, index_config: IndexConfig
) -> None:
    build_index(content_redis, synthetic_catalogue(30), config=index_config, version="v1")
    wrong_dim = synthetic_catalogue(30, dim=16)
    with pytest.raises(ValueError, match="dims"):
        build_index(content_redis, wrong_dim, config=index_config, version="v2")
    assert resolve_alias(content_redis, index_config.alias) == f"{index_config.alias}:v1"
    assert list_versions(content_redis, index_config) == ["v1"]
    assert content_redis.keys(f"{index_config.prefix('v2')}*") == []
    similar = VectorSearch(index_config.alias).similar_movies(3, 5)
    assert len(RedisTransport(content_redis).run(similar)) == 5


def test_versions_must_be_safe_names() -> None:
    with pytest.raises(ValueError, match="version"):
        IndexConfig().index_name("v1:evil")


def test_stale_keys_of_a_crashed_build_are_not_indexed(
    content_redis: redis.Redis, index_config: IndexConfig
) -> None:
    stale = f"{index_config.prefix('v1')}99999"
    content_redis.hset(stale, mapping={"movie_id": 99999, "title": "left over"})
    build = build_index(content_redis, synthetic_catalogue(25), config=index_config, version="v1")
    assert build.num_docs == 25
    assert content_redis.exists(stale) == 0
