"""feature_store.yaml substitution, Redis URL conversion, and the repo's definitions."""

from __future__ import annotations

import pytest
import yaml
from feast import Entity, FeatureService, FeatureView, FileSource

from models.features import (
    FEATURE_REPO_DIR,
    GENRES,
    SCHEMAS,
    feast_env,
    load_definitions,
    load_repo_config,
    redis_url_to_feast,
)
from models.features.store import ENV_DATA_DIR, ENV_REDIS, ENV_REGISTRY


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@127.0.0.1:6400/0", "127.0.0.1:6400,password=s3cret,db=0"),
        ("redis://127.0.0.1:7000", "127.0.0.1:7000,db=0"),
        ("redis://bob:p%40ss@localhost:7001/3", "localhost:7001,username=bob,password=p@ss,db=3"),
        # would JSON-decode to a number / a bool in Feast's parser: quoted
        ("redis://:12345@127.0.0.1:7002/0", '127.0.0.1:7002,password="12345",db=0'),
        ("redis://:true@127.0.0.1:7002/0", '127.0.0.1:7002,password="true",db=0'),
        ("rediss://:pw@example.test:6380/1", "example.test:6380,password=pw,db=1,ssl=true"),
        ("redis://:pw@127.0.0.1:7003?db=2", "127.0.0.1:7003,password=pw,db=2"),
    ],
)
def test_redis_url_to_feast(url, expected):
    assert redis_url_to_feast(url) == expected


@pytest.mark.parametrize(
    "url", ["http://x:1", "redis://:a,b@127.0.0.1:1/0", "redis://:it's@127.0.0.1:1/0"]
)
def test_redis_url_to_feast_refuses(url):
    with pytest.raises(ValueError):
        redis_url_to_feast(url)


def test_feast_parses_the_password_back():
    from feast.infra.online_stores.redis import RedisOnlineStore

    for password in ["12345", "true", "abc-DEF_1", "1e5"]:
        conn = redis_url_to_feast(f"redis://:{password}@127.0.0.1:7000/0")
        nodes, params = RedisOnlineStore._parse_connection_string(conn)
        assert nodes == [{"host": "127.0.0.1", "port": "7000"}]
        assert params == {"password": password, "db": 0}


def test_definitions_keep_the_alias_of_a_symlinked_data_dir(tmp_path):
    # The pipeline's trees: <variant>/eval -> eval.build-<id>; a later build that reuses the
    # features deletes the old build directory, so the registry must name the alias.
    build = tmp_path / "eval.build-1" / "features"
    build.mkdir(parents=True)
    (tmp_path / "eval").symlink_to("eval.build-1")
    alias = tmp_path / "eval" / "features"
    sources = [o for o in load_definitions(alias) if isinstance(o, FileSource)]
    assert sources and all(s.path.startswith(str(alias) + "/") for s in sources)
    assert not any("eval.build-1" in s.path for s in sources)


def test_load_repo_config_substitutes(tmp_path):
    env = feast_env("redis://:pw@127.0.0.1:7777/0", tmp_path / "data")
    assert env[ENV_REGISTRY] == str((tmp_path / "data" / "registry.db").resolve())
    assert env[ENV_DATA_DIR] == str((tmp_path / "data").resolve())
    config = load_repo_config(env, overrides={"registry": {"cache_ttl_seconds": 0}})
    assert config.project == "movierec"
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "127.0.0.1:7777,password=pw,db=0"
    assert config.registry.path == env[ENV_REGISTRY]
    assert config.registry.cache_ttl_seconds == 0
    assert config.entity_key_serialization_version == 3
    assert config.offline_store.type in ("file", "dask")


def test_load_repo_config_needs_the_variables(monkeypatch):
    monkeypatch.delenv(ENV_REDIS, raising=False)
    monkeypatch.delenv(ENV_REGISTRY, raising=False)
    with pytest.raises(ValueError, match=ENV_REDIS):
        load_repo_config({})


def test_yaml_uses_feast_env_substitution():
    text = (FEATURE_REPO_DIR / "feature_store.yaml").read_text()
    raw = yaml.safe_load(text)
    assert raw["online_store"]["connection_string"] == "${" + ENV_REDIS + "}"
    assert raw["registry"]["path"] == "${" + ENV_REGISTRY + "}"
    assert raw["entity_key_serialization_version"] == 3
    assert raw["provider"] == "local" and raw["offline_store"]["type"] == "file"


def test_definitions_point_at_the_data_dir_and_match_the_schemas(tmp_path):
    objects = load_definitions(tmp_path)
    sources = {o.name: o for o in objects if isinstance(o, FileSource)}
    views = {o.name: o for o in objects if isinstance(o, FeatureView)}
    services = {o.name: o for o in objects if isinstance(o, FeatureService)}
    entities = {o.name: o.join_key for o in objects if isinstance(o, Entity)}
    assert entities == {"user": "user_id", "movie": "movie_id"}
    assert set(views) == set(SCHEMAS)
    for name, view in views.items():
        source = sources[f"{name}_source"]
        assert source.path == str((tmp_path / f"{name}.parquet").absolute())
        assert view.batch_source is not None and view.batch_source.name == source.name
        schema_columns = set(SCHEMAS[name].names) - {"event_timestamp"}
        keys = {entities[e] for e in view.entities}
        assert {f.name for f in view.features} | keys == schema_columns
        # SNAPSHOT_TTL: long enough for materialize-incremental to reach any MovieLens date
        assert view.ttl is not None and view.ttl.days > 365 * 50
    for name in ("movie_metadata", "user_features"):
        assert views[name].tags["genre_order"].split(",") == list(GENRES)
    assert {p.name for p in services["ranker_v1"].feature_view_projections} == {
        "user_features",
        "user_demographics",
        "movie_metadata",
        "movie_features",
    }
    assert {p.name for p in services["controller_v1"].feature_view_projections} == {"user_history"}
    assert services["ranker_movie_v1"].precompute_online
    # every feature name is unique across views (no full_feature_names needed)
    names = [f.name for v in views.values() for f in v.features]
    assert len(names) == len(set(names))
