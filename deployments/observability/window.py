"""Distinct ids seen over a sliding time window: the catalog coverage behind its gauge."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class SlidingDistinct:
    """The distinct ids added during the last `window_s` seconds.

    Ids are kept in the order they were last seen, so expiring the old ones pops from the
    front: `add` is O(ids), `count` O(expired). Memory is bounded by the number of distinct
    ids (the catalog size), whatever the traffic.
    """

    def __init__(self, window_s: float) -> None:
        """Args:
        window_s: Window length in seconds (> 0).
        """
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._last_seen: OrderedDict[int, float] = OrderedDict()

    def add(self, ids: Iterable[int], now: float) -> None:
        """Records `ids` as seen at `now` (seconds, a monotonic clock, never decreasing)."""
        for key in ids:
            self._last_seen[key] = now
            self._last_seen.move_to_end(key)

    def count(self, now: float) -> int:
        """How many distinct ids were seen in `(now - window_s, now]`."""
        horizon = now - self.window_s
        while self._last_seen:
            seen = next(iter(self._last_seen.values()))
            if seen > horizon:
                break
            self._last_seen.popitem(last=False)
        return len(self._last_seen)
