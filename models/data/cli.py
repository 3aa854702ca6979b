"""Command line: load a MovieLens variant, cache it as parquet and optionally split it.

    python -m models.data --variant ml-100k [--source-dir DIR] [--data-dir DIR]
                          [--split stratified|temporal] [--refresh] [--allow-unverified]

Errors in the data (missing or corrupt files, checksum mismatches, unknown variants,
unreachable sources) are printed as one `error: ...` line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from models.data.errors import DatasetError
from models.data.loader import prepare
from models.data.schema import MovieLens
from models.data.splits import leave_last_n_out, stratified_split
from models.data.store import atomic_directory, write_frame
from models.data.variants import VARIANTS

EXIT_DATA_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """Returns the argument parser of `python -m models.data`."""
    parser = argparse.ArgumentParser(
        prog="python -m models.data",
        description="Load a MovieLens variant, normalize it and cache it as parquet.",
    )
    parser.add_argument(
        "--variant", help=f"one of {', '.join(VARIANTS)} (default: MOVIEREC_DATASET or ml-100k)"
    )
    parser.add_argument("--source-dir", type=Path, help="directory of raw files to load")
    parser.add_argument("--data-dir", type=Path, help="cache root (default: MOVIEREC_DATA_DIR)")
    parser.add_argument(
        "--split",
        choices=("stratified", "temporal"),
        help="also write train/test parquet: per-user random (stratified) or last-n (temporal)",
    )
    parser.add_argument("--ratio", type=float, default=0.75, help="stratified train ratio")
    parser.add_argument("--seed", type=int, default=42, help="stratified split seed")
    parser.add_argument("--last-n", type=int, default=1, help="temporal: ratings held out per user")
    parser.add_argument("--refresh", action="store_true", help="rebuild the parquet cache")
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept a downloaded archive for which no checksum is pinned",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        prepared = prepare(
            args.variant,
            args.source_dir,
            args.data_dir,
            allow_unverified=args.allow_unverified,
            refresh=args.refresh,
        )
        dataset = prepared.dataset
        print(f"loaded {dataset.variant} from {prepared.source}: {describe(dataset)}")
        print(f"{'cached in' if prepared.from_cache else 'wrote'} {prepared.path}")
        if args.split is not None:
            train, test, where = write_split(prepared.dataset, prepared.path, args)
            print(
                f"split {args.split}: train {len(train):,} rows, test {len(test):,} rows -> {where}"
            )
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_DATA_ERROR
    return 0


def describe(dataset: MovieLens) -> str:
    """One-line counts of a dataset, e.g. "100,000 ratings, 943 users, 1,682 movies"."""
    parts = [
        f"{len(dataset.ratings):,} ratings",
        f"{dataset.ratings['user_id'].nunique():,} users",
        f"{len(dataset.movies):,} movies",
    ]
    if dataset.tags is not None:
        parts.append(f"{len(dataset.tags):,} tags")
    return ", ".join(parts)


def write_split(
    dataset: MovieLens, cache: Path, args: argparse.Namespace
) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    """Splits the ratings and writes `splits/<kind>/{train,test}.parquet` under the cache."""
    if args.split == "stratified":
        train, test = stratified_split(dataset.ratings, ratio=args.ratio, seed=args.seed)
    else:
        train, test = leave_last_n_out(dataset.ratings, n=args.last_n)
    target = cache / "splits" / args.split
    with atomic_directory(target) as scratch:
        write_frame(train.reset_index(drop=True), scratch / "train.parquet", "ratings")
        write_frame(test.reset_index(drop=True), scratch / "test.parquet", "ratings")
    return train, test, target
