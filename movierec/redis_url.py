"""Which Redis a movierec component uses: ``REDIS_URL``, or the embedded server's state file.

This is what Serve replicas, the offline pipeline and the benchmarks import to find their
Redis; it neither starts nor stops anything (that is :mod:`movierec.redis_server`, imported
lazily only for ``resolve_redis_url(start_if_needed=True)``).

The embedded server records its URL (password included), pid and port in
``<run_dir>/redis/state.json`` (0600); :func:`read_state` reads it. Every URL that ends up
in a message or a log goes through :func:`mask_url` first.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from movierec.settings import Settings, get_settings

logger = logging.getLogger(__name__)

REDIS_SUBDIR = "redis"
"""The embedded server keeps all its files in ``<run_dir>/redis/``."""

STATE_FILE_NAME = "state.json"
"""The state file of the running embedded server, in its directory."""

CLI_START_HINT = "python -m movierec.redis_server start"

_MASK = "***"
_SEARCH_MODULE_NAMES = frozenset({"search", "ft", "searchlight"})


class RedisServerError(RuntimeError):
    """Base class of the Redis errors of movierec; messages never hold passwords."""


class RedisNotRunningError(RedisServerError):
    """No embedded server is running and no ``REDIS_URL`` is configured."""


class MissingSearchModuleError(RedisServerError):
    """The Redis server does not provide the query engine (``FT.*`` commands)."""


# --------------------------------------------------------------------------- URLs


def mask_url(url: str) -> str:
    """Hides the credentials of a Redis URL, for messages and logs.

    Args:
        url: A ``redis://``, ``rediss://`` or ``unix://`` URL.

    Returns:
        The URL with the password (and a lone user-info part, which redis-py may
        treat as a password) replaced by ``***``, and so for a ``password=`` query
        parameter.
    """
    if "://" not in url:
        return f"{_MASK}@{url.rsplit('@', 1)[1]}" if "@" in url else url
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostinfo = netloc.rsplit("@", 1)
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{_MASK}@{hostinfo}" if has_password else f"{_MASK}@{hostinfo}"
    masked = f"{parts.scheme}://{netloc}{parts.path}"
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        masked_pairs = [(key, _MASK if key.lower() == "password" else val) for key, val in pairs]
        masked += "?" + urlencode(masked_pairs, safe="*/")
    return masked


def _secret_of(url: str) -> str | None:
    """Returns the password of ``url``, if any, to scrub it from messages."""
    try:
        parts = urlsplit(url)
        query_password = dict(parse_qsl(parts.query)).get("password")
        return parts.password or query_password or parts.username or None
    except ValueError:
        return None


def scrub(text: str, url: str) -> str:
    """Removes the password of ``url`` from ``text``."""
    secret = _secret_of(url)
    return text.replace(secret, _MASK) if secret else text


# ------------------------------------------------------------------------ probing


def fail_fast_client(url: str, timeout: float = 2.0) -> redis.Redis:
    """A client that fails fast instead of retrying with backoff."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def _module_names(client: redis.Redis) -> set[str]:
    """Names reported by ``MODULE LIST`` (lower-case)."""
    names: set[str] = set()
    for entry in client.execute_command("MODULE", "LIST") or ():
        if isinstance(entry, dict):
            items = entry
        else:
            items = dict(zip(entry[::2], entry[1::2], strict=False))
        for key, value in items.items():
            key_text = key.decode() if isinstance(key, bytes) else str(key)
            if key_text == "name":
                names.add((value.decode() if isinstance(value, bytes) else str(value)).lower())
    return names


def has_search(client: redis.Redis) -> bool:
    """Whether the server answers ``FT.*`` (loaded module or built into Redis 8).

    ``FT._LIST`` decides; when ACLs forbid it, ``MODULE LIST`` is asked instead.

    Raises:
        RedisServerError: Both questions were refused.
    """
    try:
        client.execute_command("FT._LIST")
        return True
    except redis.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            return False
        first_error = exc
    try:
        return bool(_module_names(client) & _SEARCH_MODULE_NAMES)
    except redis.ResponseError as exc:
        raise RedisServerError(
            f"cannot tell whether the query engine is available: FT._LIST failed "
            f"({first_error}) and so did MODULE LIST ({exc})"
        ) from None


def check_search_module(url: str, *, timeout: float = 5.0) -> None:
    """Verifies that the Redis at ``url`` is reachable and has the query engine.

    Args:
        url: Redis URL (password included).
        timeout: Socket timeout in seconds.

    Raises:
        MissingSearchModuleError: It answers but has no ``FT.*`` commands.
        RedisServerError: It cannot be reached, or the credentials are refused.
    """
    where = f"the Redis at {mask_url(url)}"
    try:
        client = fail_fast_client(url, timeout)
    except ValueError as exc:
        raise RedisServerError(
            f"invalid Redis URL {mask_url(url)}: {scrub(str(exc), url)}"
        ) from None
    try:
        client.ping()
        if not has_search(client):
            raise MissingSearchModuleError(
                f"{where} lacks the query engine (no FT.* commands): movierec needs "
                "RediSearch, i.e. Redis Stack, Redis 8 with the query engine, or a "
                "Redis that loads the RediSearch module"
            )
    except redis.AuthenticationError as exc:
        raise RedisServerError(f"{where} refused the credentials: {scrub(str(exc), url)}") from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisServerError(f"cannot reach {where}: {scrub(str(exc), url)}") from None
    except redis.RedisError as exc:
        raise RedisServerError(f"{where} failed: {scrub(str(exc), url)}") from None
    finally:
        client.close()


# ---------------------------------------------------------- the embedded server


def redis_dir(run_dir: Path | str | None = None) -> Path:
    """The directory of the embedded server of ``run_dir`` (default: the configured one)."""
    base = Path(run_dir) if run_dir is not None else get_settings().run_dir
    return base.expanduser().resolve() / REDIS_SUBDIR


@dataclass(frozen=True)
class RedisState:
    """What a running embedded server's state file records.

    Attributes:
        url: Connection URL, password included.
        host: Listening address.
        port: Listening port.
        pid: Process id of redis-server.
        started_at: Unix time of the start.
        log_file: Path of the server log.
        persist: Whether RDB snapshots are kept.
    """

    url: str
    host: str
    port: int
    pid: int
    started_at: float
    log_file: str
    persist: bool

    @property
    def masked_url(self) -> str:
        """The URL with its password hidden."""
        return mask_url(self.url)


def read_state(run_dir: Path | str | None = None) -> RedisState | None:
    """Reads the state file of the embedded server.

    Args:
        run_dir: Run directory (default: the configured one).

    Returns:
        The recorded state (the process may have died since), or None when there is
        no readable state file.
    """
    path = redis_dir(run_dir) / STATE_FILE_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RedisState(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable Redis state file %s: %s", path, type(exc).__name__)
        return None


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process; zombies count as dead (where /proc tells)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc/self/stat").exists():
        return True  # no procfs (macOS): trust kill(0)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def looks_like_redis(pid: int) -> bool:
    """Guards against a recycled pid (always true where /proc is absent)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True
    try:
        comm = (proc / "comm").read_text()
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "redis-server" in comm or "redis-server" in cmdline


# ---------------------------------------------------------------------- resolve


def resolve_redis_url(
    settings: Settings | None = None, *, verify: bool = True, start_if_needed: bool = False
) -> str:
    """Returns the URL of the Redis every movierec component must use.

    ``REDIS_URL`` (external Redis) wins; otherwise the embedded server of the run
    dir is used.

    Args:
        settings: Settings to read (default: :func:`get_settings`).
        verify: Check that the server answers and has the query engine.
        start_if_needed: Start the embedded server when it is not running (only
            for single entry points such as the CLI, not for replicas).

    Returns:
        The URL, password included: never log it, use :func:`mask_url`.

    Raises:
        MissingSearchModuleError: The Redis lacks the query engine.
        RedisNotRunningError: No ``REDIS_URL`` and no running embedded server.
        RedisServerError: The Redis cannot be reached.
    """
    settings = settings or get_settings()
    if settings.redis_url:
        if verify:
            check_search_module(settings.redis_url)
        return settings.redis_url
    if start_if_needed:
        from movierec.redis_server import start  # the supervisor, only when asked to start

        return start(settings.run_dir, settings.redis_port)
    state = read_state(settings.run_dir)
    if state is None or not _server_alive(state.pid):
        raise RedisNotRunningError(
            f"the embedded Redis is not running (run dir {settings.run_dir}): start it "
            f"with `{CLI_START_HINT}`, or set REDIS_URL to a Redis with the query engine"
        )
    if verify:
        check_search_module(state.url)
    return state.url


def _server_alive(pid: int) -> bool:
    """Whether ``pid`` is a live redis-server, through the supervisor when it is loaded.

    The supervisor also knows (and reaps) the servers this interpreter started; without
    it, none were started here and the plain process checks suffice.
    """
    process = sys.modules.get("movierec.redis_server.process")
    if process is not None:
        return bool(process.server_alive(pid))
    return pid_alive(pid) and looks_like_redis(pid)
