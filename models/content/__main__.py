"""Command line: embed a MovieLens variant's catalogue, and (re)build the Redis vector index.

    python -m models.content embed [--variant ml-100k] [--out artifacts/] [--threads 2]
    python -m models.content index [--embeddings artifacts/] [--variant ml-100k]
                                   [--alias movies] [--version v2] [--keep-previous]

`embed` writes `content_embeddings.parquet`; `index` loads it into a new index version and
swaps the alias atomically. Redis comes from `movierec.redis_url.resolve_redis_url`
(REDIS_URL, else the running embedded server).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from movierec.settings import get_settings


def _embed(args: argparse.Namespace) -> int:
    from models.content.embeddings import embed_movies, load_encoder, write_embeddings
    from models.data import load_dataset

    dataset = load_dataset(args.variant)
    started = time.perf_counter()
    encoder = load_encoder(num_threads=args.threads)
    loaded = time.perf_counter() - started
    frame = embed_movies(
        dataset.movies,
        dataset.tags,
        encoder,
        batch_size=args.batch_size,
        num_threads=args.threads,
        max_tags=args.max_tags,
    )
    path = write_embeddings(frame, args.out or get_settings().artifacts_dir)
    print(
        f"embedded {len(frame)} movies of {dataset.variant} in "
        f"{frame.attrs['encode_seconds']:.1f}s (model load {loaded:.1f}s, "
        f"{args.threads} threads): {path}"
    )
    return 0


def _index(args: argparse.Namespace) -> int:
    import redis

    from models.content.embeddings import read_embeddings
    from models.content.index import IndexConfig, build_index
    from models.data import load_dataset
    from movierec.redis_url import resolve_redis_url

    embeddings = read_embeddings(args.embeddings or get_settings().artifacts_dir)
    movies = load_dataset(args.variant).movies
    client = redis.Redis.from_url(resolve_redis_url(), decode_responses=False)
    try:
        build = build_index(
            client,
            embeddings,
            movies,
            IndexConfig(alias=args.alias),
            version=args.version,
            drop_previous=not args.keep_previous,
        )
    finally:
        client.close()
    print(
        f"indexed {build.num_docs} movies into {build.index_name} in {build.load_seconds:.1f}s;"
        f" alias {args.alias!r} now points at it (previous: {build.previous or 'none'}"
        f"{', dropped' if build.previous_dropped else ''})"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.content", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    embed = commands.add_parser("embed", help="write content_embeddings.parquet")
    embed.add_argument("--variant", default=None, help="MovieLens variant (default: settings)")
    embed.add_argument("--out", type=Path, default=None, help="file or directory")
    embed.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    embed.add_argument("--batch-size", type=int, default=64)
    embed.add_argument("--max-tags", type=int, default=10, help="tags per movie text")
    embed.set_defaults(run=_embed)
    index = commands.add_parser("index", help="build a new index version and swap the alias")
    index.add_argument("--variant", default=None, help="MovieLens variant (default: settings)")
    index.add_argument("--embeddings", type=Path, default=None, help="file or directory")
    index.add_argument("--alias", default="movies")
    index.add_argument("--version", default=None, help="default: a UTC timestamp")
    index.add_argument("--keep-previous", action="store_true", help="do not drop the old one")
    index.set_defaults(run=_index)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
