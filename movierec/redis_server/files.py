"""The files of one embedded server under ``<run_dir>/redis/``, and the lock that guards them."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from movierec.redis_server.config import POLL_INTERVAL
from movierec.redis_url import STATE_FILE_NAME, RedisServerError, redis_dir

_LOG_TAIL_LINES = 20


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
        return cls(root=redis_dir(run_dir))

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
        """Connection information of the running server (read by `movierec.redis_url`)."""
        return self.root / STATE_FILE_NAME

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


def write_private(path: Path, text: str) -> None:
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


def log_size(path: Path) -> int:
    """Current size of the log, so that a start only inspects its own lines."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def read_log(path: Path, offset: int = 0) -> str:
    """Reads the log from ``offset``; empty when missing."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def log_tail(path: Path, offset: int = 0) -> str:
    """Last lines of the log (from ``offset``), indented for error messages."""
    lines = read_log(path, offset).splitlines()[-_LOG_TAIL_LINES:]
    if not lines:
        return f"  (the log {path} is empty)"
    return "\n".join(f"  {line}" for line in lines)


def read_pidfile(paths: RedisPaths) -> int | None:
    """Pid recorded by redis-server itself, if any."""
    try:
        return int(paths.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def remove_runtime_files(paths: RedisPaths) -> None:
    """Forgets a stopped server (state, password, config, pidfile)."""
    for path in (paths.state_file, paths.password_file, paths.conf_file, paths.pid_file):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def locked(paths: RedisPaths, timeout: float) -> Iterator[None]:
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
                time.sleep(POLL_INTERVAL)
        yield
    finally:
        os.close(fd)
