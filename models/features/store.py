"""The Feast side of the pipeline: configuration, sources, apply, materialize, training reads.

`feature_repo/feature_store.yaml` takes its Redis connection string and registry path from
`${MOVIEREC_FEAST_REDIS}` / `${MOVIEREC_FEAST_REGISTRY}`, and `feature_repo/movierec_repo.py`
its parquet directory from `MOVIEREC_FEAST_DATA_DIR`. Feast's CLI reads them from the
environment (`python -m models.features env` prints them); this module fills the same
variables from explicit arguments, so the pipeline never depends on the process environment
and the CLI and the pipeline always build the same registry from the same files.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pandas as pd
import pyarrow.parquet as pq
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, RepoConfig
from feast.data_source import DataSource

from models.features.snapshots import (
    EVENT_TIMESTAMP,
    FeatureTables,
    SnapshotConfig,
    build_feature_tables,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FEATURE_REPO_DIR = PROJECT_ROOT / "feature_repo"
DEFINITIONS_FILE = FEATURE_REPO_DIR / "movierec_repo.py"

ENV_REDIS = "MOVIEREC_FEAST_REDIS"
ENV_REGISTRY = "MOVIEREC_FEAST_REGISTRY"
ENV_DATA_DIR = "MOVIEREC_FEAST_DATA_DIR"
ENV_PROJECT = "MOVIEREC_FEAST_PROJECT"
# One Feast project per artifacts tree (see ArtifactLayout.feast_project), so that several
# trees can share one Redis; "movierec" for a plain CLI session.
DEFAULT_PROJECT = "movierec"

RANKER_SERVICE = "ranker_v1"
RANKER_MOVIE_SERVICE = "ranker_movie_v1"
CONTROLLER_SERVICE = "controller_v1"
REGISTRY_FILE = "registry.db"

FeastObject = Entity | FeatureView | FeatureService | DataSource

# The offline store of feature_store.yaml is Feast's DuckDB one (an ASOF point-in-time join;
# 2.6x faster than the dask `file` store on ml-100k's training set, same values: README
# "Object storage"). These overrides pick either explicitly, e.g. to compare them.
DUCKDB_OFFLINE: Mapping[str, Any] = {"offline_store": {"type": "duckdb"}}
DASK_OFFLINE: Mapping[str, Any] = {"offline_store": {"type": "file"}}

_ENV_LOCK = threading.Lock()
_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


# --- configuration ---------------------------------------------------------------------------


def redis_url_to_feast(url: str) -> str:
    """Converts redis://[user]:password@host:port/db into Feast's "host:port,password=...,db=N".

    Feast splits its connection string on "," and JSON-decodes each value, so a password that
    would decode to a non-string (e.g. "1234", "true") is JSON-quoted; passwords holding ",",
    "'" or a line break are refused (they cannot survive Feast's format or the YAML quoting).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"not a redis:// URL: {parts.scheme}://...")
    host = parts.hostname or "localhost"
    if ":" in host:
        raise ValueError("Feast's Redis connection string cannot hold an IPv6 address")
    out = [f"{host}:{parts.port or 6379}"]
    if parts.username:
        out.append(f"username={_feast_param(unquote(parts.username))}")
    if parts.password:
        out.append(f"password={_feast_param(unquote(parts.password))}")
    db = parts.path.lstrip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    if not db.isdigit():
        raise ValueError(f"bad Redis db in URL: {db!r}")
    out.append(f"db={int(db)}")
    if parts.scheme == "rediss":
        out.append("ssl=true")
    return ",".join(out)


def _feast_param(value: str) -> str:
    if any(c in value for c in ",'\n\r"):
        raise ValueError("Redis credentials with ',', \"'\" or line breaks are not supported")
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return value if isinstance(decoded, str) else json.dumps(value)


def feast_env(
    redis_url: str,
    data_dir: Path | str | None = None,
    registry_path: Path | str | None = None,
    project: str = DEFAULT_PROJECT,
) -> dict[str, str]:
    """The variables feature_store.yaml and movierec_repo.py read.

    The registry defaults to data_dir/registry.db; a reader that only needs the registry
    (online reads) may pass `registry_path` alone. Paths are made absolute but symlinks are
    kept: the registry records source paths, and an artifacts tree is reached through a
    symlink that later builds re-point.
    """
    if data_dir is None and registry_path is None:
        raise ValueError("need data_dir or registry_path")
    env = {ENV_REDIS: redis_url_to_feast(redis_url), ENV_PROJECT: project}
    if data_dir is not None:
        env[ENV_DATA_DIR] = source_location(data_dir)
    if registry_path is None and env[ENV_DATA_DIR].startswith("s3://"):
        raise ValueError("sources in the object store need a local registry_path")
    registry = Path(registry_path) if registry_path else Path(env[ENV_DATA_DIR]) / REGISTRY_FILE
    env[ENV_REGISTRY] = str(registry.absolute())
    return env


def source_location(data_dir: Path | str) -> str:
    """The parquet sources' directory as Feast records it: an `s3://` URI as is (the object
    store, `movierec.storage`), a local path made absolute (symlinks kept)."""
    text = str(data_dir)
    return text.rstrip("/") if text.startswith("s3://") else str(Path(text).absolute())


def load_repo_config(
    env: Mapping[str, str] | None = None,
    *,
    repo_path: Path = FEATURE_REPO_DIR,
    overrides: Mapping[str, Any] | None = None,
) -> RepoConfig:
    """Reads feature_store.yaml the way Feast does, with `env` taking precedence over os.environ.

    `overrides` is deep-merged into the parsed YAML (e.g. {"registry": {"cache_mode": "thread"}})
    for knobs a reader wants without a second YAML file.
    """
    values = {**os.environ, **(env or {})}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    expanded = _VAR.sub(substitute, (repo_path / "feature_store.yaml").read_text())
    raw = yaml.safe_load(expanded)
    names = (ENV_REDIS, ENV_REGISTRY, ENV_PROJECT)
    unresolved = [n for n in names if "${" + n + "}" in json.dumps(raw)]
    if unresolved:
        raise ValueError(f"feature_store.yaml needs {', '.join(unresolved)}")
    if overrides:
        raw = _deep_merge(raw, overrides)
    config = RepoConfig(**raw)
    config.repo_path = repo_path
    return config


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def prepare_duckdb_s3(endpoint_url: str | None = None) -> None:
    """Lets Feast's DuckDB offline store (ibis' default DuckDB connection) read `s3://`.

    DuckDB reads S3 through its httpfs extension, which must match the engine's version and
    cannot be downloaded here: the pinned `duckdb-extension-httpfs` package ships the
    extension of the pinned `duckdb` (1.5.5 both), loaded from its file, so ibis finds it
    loaded and installs nothing. The credentials come from the AWS chain (botocore's
    session: environment, shared credentials file, instance or pod role) into a DuckDB
    secret of this process's in-memory connection, never into a file or a log.

    Args:
        endpoint_url: An S3-compatible endpoint (None: `AWS_ENDPOINT_URL`, else AWS).
    """
    import botocore.session
    import duckdb_extension_httpfs
    import ibis

    package = Path(duckdb_extension_httpfs.__file__).parent
    extension = next(package.rglob("httpfs.duckdb_extension"))
    con: Any = ibis.get_backend()
    con.raw_sql(f"INSTALL '{extension}'")  # from the file: no download (ibis checks this)
    con.raw_sql("LOAD httpfs")
    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        raise PermissionError("no AWS credentials in the environment or the AWS chain")
    frozen = credentials.get_frozen_credentials()
    options = {
        "TYPE": "s3",
        "KEY_ID": frozen.access_key,
        "SECRET": frozen.secret_key,
        "REGION": session.get_config_variable("region") or "us-east-1",
    }
    if frozen.token:
        options["SESSION_TOKEN"] = frozen.token
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint)
        options.update(
            ENDPOINT=parts.netloc, URL_STYLE="path", USE_SSL=str(parts.scheme == "https").lower()
        )
    body = ", ".join(
        f"{key} {value}" if key in ("TYPE", "USE_SSL") else f"{key} '{_sql_quote(value)}'"
        for key, value in options.items()
    )
    con.raw_sql(f"CREATE OR REPLACE SECRET movierec_s3 ({body})")


def _sql_quote(value: str) -> str:
    return value.replace("'", "''")


def open_store(
    redis_url: str,
    data_dir: Path | str | None = None,
    registry_path: Path | str | None = None,
    *,
    project: str = DEFAULT_PROJECT,
    overrides: Mapping[str, Any] | None = None,
) -> FeatureStore:
    """A FeatureStore on feature_repo/ with this Redis, registry and project (see `feast_env`)."""
    env = feast_env(redis_url, data_dir, registry_path, project)
    config = load_repo_config(env, overrides=overrides)
    if config.offline_store.type == "duckdb" and env.get(ENV_DATA_DIR, "").startswith("s3://"):
        prepare_duckdb_s3()
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR), config=config)


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def load_definitions(data_dir: Path | str) -> list[FeastObject]:
    """Evaluates feature_repo/movierec_repo.py (as `feast apply` does) for this parquet dir."""
    name = f"_movierec_feature_repo_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, DEFINITIONS_FILE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {DEFINITIONS_FILE}")
    module = importlib.util.module_from_spec(spec)
    with _environ({ENV_DATA_DIR: source_location(data_dir)}):
        spec.loader.exec_module(module)
    return [v for v in vars(module).values() if isinstance(v, FeastObject)]


# --- the pipeline steps ----------------------------------------------------------------------


def write_sources(tables: FeatureTables, data_dir: Path | str) -> dict[str, Path]:
    """Writes each table to data_dir/<name>.parquet, atomically per file (temp file + rename)."""
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, table in tables.tables().items():
        path = out / f"{name}.parquet"
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
        os.close(fd)
        try:
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths[name] = path
    return paths


def apply_definitions(store: FeatureStore, data_dir: Path | str) -> list[FeastObject]:
    """`feast apply` in code: registers movierec_repo.py's objects, sources under data_dir."""
    objects = load_definitions(data_dir)
    store.apply(list[Any](objects))
    return objects


def materialize(
    store: FeatureStore,
    start: datetime,
    end: datetime,
    *,
    feature_views: Sequence[str] | None = None,
    replace: bool = True,
) -> None:
    """Loads the latest row per entity with start <= event_timestamp <= end into Redis.

    With `replace` (the default) the views' rows are first deleted from Redis: Feast's Redis
    writer skips a row whose timestamp is not newer than the stored one, so a rebuild from
    other ratings (training split vs --full) stamped at the same or an earlier last snapshot
    would otherwise leave the previous build's values online.
    """
    views = [
        fv for fv in store.list_feature_views() if feature_views is None or fv.name in feature_views
    ]
    if replace:
        store.provider.update_infra(
            project=store.project,
            tables_to_delete=views,
            tables_to_keep=[],
            entities_to_delete=[],
            entities_to_keep=[],
            partial=True,
        )
    store.materialize(start_date=start, end_date=end, feature_views=[fv.name for fv in views])


def feature_refs(store: FeatureStore, features: str | Sequence[str]) -> list[str]:
    """The "view:feature" refs of a feature service (by name), or the given refs as a list."""
    if not isinstance(features, str):
        return list(features)
    service = store.get_feature_service(features)
    return [
        f"{projection.name_to_use()}:{feature.name}"
        for projection in service.feature_view_projections
        for feature in projection.features
    ]


def get_training_features(
    store: FeatureStore,
    entity_df: pd.DataFrame,
    features: str | Sequence[str] = RANKER_SERVICE,
) -> pd.DataFrame:
    """Point-in-time join of `features` (a feature service name or refs) onto `entity_df`.

    entity_df: the views' join keys (user_id, movie_id) and either `event_timestamp`
    (datetime) or `timestamp` (int seconds, as in the ratings table); extra columns (labels)
    pass through. Each row gets, per feature view, the newest row stamped at or before its
    time, i.e. a snapshot computed only from ratings strictly before it; a row earlier than
    all of an entity's snapshots gets nulls. Rows come back in entity_df's order and index.

    Feast 0.67's dask/file store (the offline store before DuckDB; `DASK_OFFLINE` still
    selects it) mishandles two cases, both worked around here while the join
    itself stays Feast's `get_historical_features`: it collapses entity rows sharing a view's
    join key and timestamp (feast-dev/feast#6787; half of ml-100k's ratings share
    (user_id, timestamp) with another) and it drops, instead of nulling, an entity row whose
    every feature row is newer than it. So each view is asked separately (a drop in one
    view would otherwise take the other views' values with it), for the unique (keys,
    timestamp) pairs only, and the answers are left-joined back.
    """
    frame = entity_df.copy()
    if EVENT_TIMESTAMP in frame.columns:
        stamps = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    elif "timestamp" in frame.columns:
        stamps = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    else:
        raise ValueError("entity_df needs event_timestamp or timestamp (seconds)")
    frame[EVENT_TIMESTAMP] = stamps.astype("datetime64[ns, UTC]")

    views: dict[str, list[str]] = {}
    for ref in feature_refs(store, features):
        views.setdefault(ref.split(":", 1)[0], []).append(ref)

    for view_name, refs in views.items():
        keys = store.get_feature_view(view_name).join_keys
        missing = set(keys) - set(frame.columns)
        if missing:
            raise ValueError(f"entity_df lacks join keys {sorted(missing)} for {refs[0]}")
        on = [*keys, EVENT_TIMESTAMP]
        request = frame[on].drop_duplicates(ignore_index=True)
        answer = store.get_historical_features(entity_df=request, features=refs).to_df()
        answer[EVENT_TIMESTAMP] = pd.to_datetime(answer[EVENT_TIMESTAMP], utc=True).astype(
            "datetime64[ns, UTC]"
        )
        columns = on + [ref.split(":", 1)[1] for ref in refs]
        frame = frame.merge(answer[columns], on=on, how="left", validate="many_to_one")
    frame.index = entity_df.index
    return frame


@dataclass
class BuildReport:
    """What `build_feature_store` did and how long each step took (seconds)."""

    data_dir: Path
    registry_path: Path
    rows: dict[str, int]
    snapshots: int
    first_snapshot: pd.Timestamp
    last_snapshot: pd.Timestamp
    seconds: dict[str, float] = field(default_factory=dict)


def build_feature_store(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    users: pd.DataFrame | None,
    *,
    data_dir: Path | str,
    redis_url: str,
    registry_path: Path | str | None = None,
    config: SnapshotConfig | None = None,
    materialize_online: bool = True,
    project: str = DEFAULT_PROJECT,
) -> BuildReport:
    """The whole offline step: snapshots -> parquet -> feast apply -> materialize to Redis.

    `ratings` is what the features may see: the training split for evaluation artifacts, all
    ratings in --full mode.
    """
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    tables = build_feature_tables(ratings, movies, users, config)
    seconds["snapshots"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    write_sources(tables, data_dir)
    seconds["write_parquet"] = time.perf_counter() - t0

    env = feast_env(redis_url, data_dir, registry_path, project)
    t0 = time.perf_counter()
    store = FeatureStore(repo_path=str(FEATURE_REPO_DIR), config=load_repo_config(env))
    apply_definitions(store, data_dir)
    seconds["apply"] = time.perf_counter() - t0

    if materialize_online:
        t0 = time.perf_counter()
        materialize(store, *tables.time_range())
        seconds["materialize"] = time.perf_counter() - t0
    return BuildReport(
        data_dir=Path(env[ENV_DATA_DIR]),
        registry_path=Path(env[ENV_REGISTRY]),
        rows={name: t.num_rows for name, t in tables.tables().items()},
        snapshots=len(tables.snapshot_times),
        first_snapshot=tables.first_snapshot,
        last_snapshot=tables.last_snapshot,
        seconds=seconds,
    )
