"""Socket checks shared by the embedded server's tests."""

from __future__ import annotations

import errno
import socket

from movierec.redis_server import HOST


def can_bind(port: int) -> bool:
    """Whether ``HOST:port`` is free again (with SO_REUSEADDR, as redis-server binds)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            assert exc.errno == errno.EADDRINUSE
            return False
    return True
