"""The redis-server process: ports, spawning, liveness, readiness and termination."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import time

import redis

from movierec.redis_server.binaries import RedisBinaries
from movierec.redis_server.config import HOST, POLL_INTERVAL, REDIS_DEFAULT_PORT, SIGNAL_WAIT
from movierec.redis_server.files import RedisPaths, log_tail, read_log
from movierec.redis_url import (
    MissingSearchModuleError,
    RedisServerError,
    fail_fast_client,
    has_search,
    looks_like_redis,
    mask_url,
    scrub,
)
from movierec.redis_url import pid_alive as _os_pid_alive

logger = logging.getLogger(__name__)

_ADDRESS_IN_USE = "address already in use"

# redis-server processes started by this interpreter, so that they can be reaped
# (otherwise a stopped server lingers as a zombie and still looks alive).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


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


# -------------------------------------------------------------------------- ports


def port_is_free(port: int) -> bool:
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


# ---------------------------------------------------------------------- liveness


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as dead; ours are reaped)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is None:
            return True
        del _CHILDREN[pid]
        return False
    return _os_pid_alive(pid)


def server_alive(pid: int) -> bool:
    """Whether ``pid`` is a live redis-server (not a dead or recycled pid)."""
    return pid_alive(pid) and looks_like_redis(pid)


def wait_gone(pid: int, timeout: float) -> bool:
    """Waits up to ``timeout`` seconds for ``pid`` to exit; returns whether it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL)
    return True


def terminate(pid: int) -> bool:
    """SIGTERM, then SIGKILL, each with a bounded wait; returns whether pid is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not pid_alive(pid):
            return True
        if not looks_like_redis(pid):
            logger.warning("pid %d is no longer redis-server; not signalling it", pid)
            return True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if wait_gone(pid, SIGNAL_WAIT):
            return True
    return not pid_alive(pid)


def spawn(binaries: RedisBinaries, paths: RedisPaths) -> subprocess.Popen[bytes]:
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


# --------------------------------------------------------------------- readiness


def probe(url: str) -> str | None:
    """One readiness check of the embedded server.

    Returns:
        None when it answers PING and FT._LIST, else why not (a transient state).

    Raises:
        MissingSearchModuleError: It answers without the query engine.
        RedisServerError: It refuses the password.
    """
    client = fail_fast_client(url, timeout=1.0)
    try:
        client.ping()
        if not has_search(client):
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
        return scrub(str(exc), url) or type(exc).__name__
    finally:
        client.close()


def wait_ready(
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
        if not pid_alive(pid):
            new_log = read_log(paths.log_file, log_offset)
            if _ADDRESS_IN_USE in new_log.lower():
                raise PortInUseError(port)
            raise RedisServerError(
                f"redis-server (pid {pid}) exited during startup; last lines of "
                f"{paths.log_file}:\n{log_tail(paths.log_file, log_offset)}"
            )
        try:
            problem = probe(url)
        except RedisServerError:
            if wait_gone(pid, SIGNAL_WAIT):
                continue  # it was not ours: our server lost the port and exited
            raise
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise RedisStartTimeoutError(
                f"redis-server (pid {pid}, port {port}) did not answer PING and FT._LIST "
                f"within {timeout:g}s ({problem}); last lines of {paths.log_file}:\n"
                f"{log_tail(paths.log_file, log_offset)}"
            )
        time.sleep(POLL_INTERVAL)
