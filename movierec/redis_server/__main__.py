"""Command line of the embedded Redis.

python -m movierec.redis_server start|stop|status|url
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import redis

from movierec.redis_server.config import DEFAULT_START_TIMEOUT, DEFAULT_STOP_TIMEOUT
from movierec.redis_server.server import ensure_running, status, stop
from movierec.redis_url import (
    RedisServerError,
    check_search_module,
    mask_url,
    resolve_redis_url,
    scrub,
)
from movierec.settings import Settings, get_settings


def _cli_start(args: argparse.Namespace, settings: Settings) -> int:
    """Starts the embedded Redis, or only checks ``REDIS_URL`` when it is set."""
    if settings.redis_url and args.run_dir is None:
        check_search_module(settings.redis_url)
        print(
            f"REDIS_URL is set: using the external Redis at {mask_url(settings.redis_url)};"
            " the embedded Redis is not started"
        )
        return 0
    state = ensure_running(
        args.run_dir or settings.run_dir, args.port, persist=True, timeout=args.timeout
    )
    print(f"embedded Redis running at {state.masked_url} (pid {state.pid}); log: {state.log_file}")
    return 0


def _cli_stop(args: argparse.Namespace, settings: Settings) -> int:
    """Stops the embedded Redis; not running is fine."""
    if stop(args.run_dir or settings.run_dir, timeout=args.timeout):
        print("embedded Redis stopped")
    else:
        print("embedded Redis is not running; nothing to stop")
    return 0


def _cli_status(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the status (password masked); exit 3 unless healthy."""
    if settings.redis_url:
        print(f"REDIS_URL is set: components use {mask_url(settings.redis_url)}")
    report = status(args.run_dir or settings.run_dir)
    print(f"embedded Redis: {report.detail}")
    if report.running:
        print(f"  url:  {report.masked_url}\n  pid:  {report.pid}\n  port: {report.port}")
    if report.log_file:
        print(f"  log:  {report.log_file}")
    return 0 if report.healthy else 3


def _cli_url(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the URL components use, password included."""
    if args.run_dir is not None:
        settings = settings.model_copy(update={"run_dir": args.run_dir, "redis_url": None})
    print(resolve_redis_url(settings))
    return 0


_COMMANDS = {"start": _cli_start, "stop": _cli_stop, "status": _cli_status, "url": _cli_url}


def _parser() -> argparse.ArgumentParser:
    """The argument parser of :func:`main`."""
    parser = argparse.ArgumentParser(
        prog="python -m movierec.redis_server",
        description="Manage the embedded Redis (redis-server + RediSearch) of movierec.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "start": "start the embedded Redis (no-op if running, or if REDIS_URL is set)",
        "stop": "stop the embedded Redis (no-op if not running)",
        "status": "show the embedded Redis status (exit 3 if not running/ready)",
        "url": "print the Redis URL components use (contains the password)",
    }
    for name, text in helps.items():
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument(
            "--run-dir",
            type=Path,
            default=None,
            help="run directory (default: MOVIEREC_RUN_DIR, else <project>/run)",
        )
        if name == "start":
            sub.add_argument(
                "--port",
                type=int,
                default=None,
                help="port (default: MOVIEREC_REDIS_PORT; 0 picks a free one)",
            )
        if name in ("start", "stop"):
            default = DEFAULT_START_TIMEOUT if name == "start" else DEFAULT_STOP_TIMEOUT
            sub.add_argument(
                "--timeout",
                type=float,
                default=default,
                help=f"seconds to wait (default: {default:g})",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on success, 1 on error, 3 from ``status`` when not running.
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return _COMMANDS[args.command](args, get_settings())
    except (RedisServerError, OSError, redis.RedisError, ValueError) as exc:
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


def _describe(exc: BaseException) -> str:
    """Message of an exception, with any configured password scrubbed."""
    text = str(exc) or type(exc).__name__
    with contextlib.suppress(Exception):
        configured = get_settings().redis_url
        if configured:
            text = scrub(text, configured)
    return text


if __name__ == "__main__":
    sys.exit(main())
