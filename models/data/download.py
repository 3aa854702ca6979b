"""Downloading a file over HTTPS: streamed to a temporary file, checked, then moved in place."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import httpx

from models.data.errors import SourceUnavailableError

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds; an unreachable host fails fast
READ_TIMEOUT = 60.0  # seconds without receiving a byte
_CHUNK = 1 << 20


def download(url: str, dest: Path, check: Callable[[Path], None] | None = None) -> Path:
    """Downloads `url` to `dest`, which only ever holds a complete, checked file.

    Args:
        url: HTTP(S) URL.
        dest: Final path; its directory is created if needed.
        check: Called with the temporary file before it is moved to `dest` (e.g. a
            checksum check); an exception it raises aborts the download.

    Returns:
        `dest`.

    Raises:
        SourceUnavailableError: The host cannot be reached, times out or answers with an
            HTTP error.
        Exception: Whatever `check` raises; the temporary file is removed.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    partial = Path(name)
    try:
        logger.info("downloading %s", url)
        with os.fdopen(handle, "wb") as out:
            _stream(url, out)
        if check is not None:
            check(partial)
        partial.replace(dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return dest


def _stream(url: str, out: IO[bytes]) -> None:
    timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != httpx.codes.OK:
                raise SourceUnavailableError(
                    f"could not download {url}: HTTP {response.status_code}"
                )
            for chunk in response.iter_bytes(_CHUNK):
                out.write(chunk)
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise SourceUnavailableError(f"could not download {url}: {reason}") from None
