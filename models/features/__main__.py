"""Command line for the feature store.

    python -m models.features env [--redis-url URL] [--data-dir DIR] [--registry PATH]
        prints `export` lines for feature_repo/feature_store.yaml and movierec_repo.py, so
        the plain Feast CLI works:  eval "$(python -m models.features env)"; cd feature_repo;
        feast apply; feast materialize-incremental $(date -u +%FT%T)
    python -m models.features build [--tables DIR] [--data-dir DIR] [--redis-url URL]
        snapshots -> parquet -> feast apply -> materialize, from the normalized tables
        (ratings/movies[/users].parquet, see models/data/schema.py) in DIR.

Defaults come from movierec.settings: REDIS_URL, <artifacts_dir>/features,
<data_dir>/<dataset>.
"""

from __future__ import annotations

import argparse
import json
import shlex
from datetime import timedelta
from pathlib import Path

import pandas as pd

from models.features.snapshots import SnapshotConfig
from models.features.store import DEFAULT_PROJECT, build_feature_store, feast_env


def _settings_defaults() -> tuple[str | None, Path, Path]:
    from movierec.settings import get_settings

    settings = get_settings()
    return (
        settings.redis_url,
        settings.artifacts_dir / "features",
        settings.data_dir / settings.dataset,
    )


def main(argv: list[str] | None = None) -> None:
    redis_url, data_dir, tables_dir = _settings_defaults()
    parser = argparse.ArgumentParser(prog="python -m models.features", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    env = sub.add_parser("env", help="print the Feast environment as shell exports")
    build = sub.add_parser("build", help="build the offline store and materialize it")
    for p in (env, build):
        p.add_argument("--redis-url", default=redis_url, help="redis://:PASSWORD@HOST:PORT/DB")
        p.add_argument("--data-dir", type=Path, default=data_dir, help="parquet + registry dir")
        p.add_argument("--registry", type=Path, default=None, help="default: DATA_DIR/registry.db")
        p.add_argument("--project", default=DEFAULT_PROJECT, help="Feast project name")
    build.add_argument("--tables", type=Path, default=tables_dir, help="normalized tables dir")
    build.add_argument("--cadence-days", type=float, default=7.0)
    build.add_argument("--no-materialize", action="store_true")
    args = parser.parse_args(argv)
    if not args.redis_url:
        parser.error("--redis-url (or REDIS_URL) is required")

    if args.command == "env":
        for key, value in feast_env(
            args.redis_url, args.data_dir, args.registry, args.project
        ).items():
            print(f"export {key}={shlex.quote(value)}")
        return

    users_path = args.tables / "users.parquet"
    report = build_feature_store(
        pd.read_parquet(args.tables / "ratings.parquet"),
        pd.read_parquet(args.tables / "movies.parquet"),
        pd.read_parquet(users_path) if users_path.exists() else None,
        data_dir=args.data_dir,
        redis_url=args.redis_url,
        registry_path=args.registry,
        config=SnapshotConfig(cadence=timedelta(days=args.cadence_days)),
        materialize_online=not args.no_materialize,
        project=args.project,
    )
    print(
        json.dumps(
            {
                "data_dir": str(report.data_dir),
                "registry": str(report.registry_path),
                "rows": report.rows,
                "snapshots": report.snapshots,
                "first_snapshot": report.first_snapshot.isoformat(),
                "last_snapshot": report.last_snapshot.isoformat(),
                "seconds": {k: round(v, 3) for k, v in report.seconds.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
