"""A near cache of movie feature rows: movie features only change when the pipeline
materializes, so a replica keeps the rows it read (TTL, least recently used evicted)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any


class MovieFeatureCache:
    """Movie id -> (expiry, feature row), least recently used evicted first."""

    def __init__(self, ttl_s: float, max_size: int) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._rows: OrderedDict[int, tuple[float, dict[str, Any]]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def resize(self, ttl_s: float, max_size: int) -> None:
        """Applies new limits; entries beyond them are dropped."""
        self.ttl_s, self.max_size = ttl_s, max_size
        if ttl_s <= 0 or max_size <= 0:
            self._rows.clear()
        while len(self._rows) > max(max_size, 0):
            self._rows.popitem(last=False)

    def get_many(
        self, ids: Sequence[int], now: float
    ) -> tuple[dict[int, dict[str, Any]], list[int]]:
        """The cached rows of `ids` and the ids to read (missing or expired), in order."""
        found: dict[int, dict[str, Any]] = {}
        missing: list[int] = []
        for movie_id in ids:
            entry = self._rows.get(movie_id)
            if entry is not None and entry[0] > now:
                found[movie_id] = entry[1]
                self._rows.move_to_end(movie_id)
            else:
                missing.append(movie_id)
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def put_many(self, rows: dict[int, dict[str, Any]], now: float) -> None:
        """Stores freshly read rows (no-op when the cache is disabled)."""
        if self.ttl_s <= 0 or self.max_size <= 0:
            return
        expiry = now + self.ttl_s
        for movie_id, row in rows.items():
            self._rows[movie_id] = (expiry, row)
            self._rows.move_to_end(movie_id)
        while len(self._rows) > self.max_size:
            self._rows.popitem(last=False)
