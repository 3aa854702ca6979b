"""A bounded load loop for the fault-injection tests: a few client threads against 127.0.0.1.

Every request is recorded (send time, latency, status, degraded, fallbacks), so a test can
count failures around a fault and measure when answers recover. The loop stops by itself
after `max_requests` requests or `max_seconds`, whichever comes first.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class Outcome:
    """One request: when it was sent (perf_counter s), how long it took (s), what came back.

    `server` is the Controller's own time for it (s: the `total` of its `Server-Timing`
    header), without the HTTP proxy and the queues in front of the Controller; None without
    the header.
    """

    sent: float
    latency: float
    status: int
    degraded: bool | None = None
    fallbacks: tuple[tuple[str, str], ...] = ()
    sources: frozenset[str] = frozenset()
    server: float | None = None


@dataclass
class LoadLoop:
    """`concurrency` threads sending GET /recommendations/{user} round-robin over `users`.

    Use as a context manager: the threads start on enter and are stopped and joined on exit.
    """

    base_url: str
    users: Sequence[int]
    concurrency: int = 4
    max_requests: int = 5000
    max_seconds: float = 120.0
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 30.0
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._sent = 0
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> LoadLoop:
        self._deadline = time.perf_counter() + self.max_seconds
        for index in range(self.concurrency):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finish(self) -> None:
        """Waits until the loop has sent its `max_requests` (or ran `max_seconds`)."""
        for thread in self._threads:
            thread.join()

    def stop(self) -> None:
        """Stops sending and waits for the requests in flight."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout_s + 5)

    def _next(self) -> int | None:
        with self._lock:
            if self._sent >= self.max_requests or time.perf_counter() > self._deadline:
                return None
            self._sent += 1
            return self.users[self._sent % len(self.users)]

    def _run(self, index: int) -> None:
        with httpx.Client(
            base_url=self.base_url, timeout=self.timeout_s, headers=self.headers
        ) as client:
            while not self._stop.is_set():
                user = self._next()
                if user is None:
                    return
                sent = time.perf_counter()
                try:
                    response = client.get(f"/recommendations/{user}", params={"k": 10})
                except httpx.HTTPError:
                    outcome = Outcome(sent, time.perf_counter() - sent, 0)
                else:
                    outcome = _outcome(sent, response)
                with self._lock:
                    self.outcomes.append(outcome)

    def between(self, start: float, end: float = float("inf")) -> list[Outcome]:
        """The requests sent in [start, end) (perf_counter seconds), in send order."""
        with self._lock:
            return sorted((o for o in self.outcomes if start <= o.sent < end), key=_sent)

    def failed(self, outcomes: Sequence[Outcome] | None = None) -> list[Outcome]:
        """Requests that did not get HTTP 200."""
        return [o for o in (self.outcomes if outcomes is None else outcomes) if o.status != 200]


def _sent(outcome: Outcome) -> float:
    return outcome.sent


def _outcome(sent: float, response: httpx.Response) -> Outcome:
    latency = time.perf_counter() - sent
    if response.status_code != 200:
        return Outcome(sent, latency, response.status_code)
    body: dict[str, Any] = response.json()
    return Outcome(
        sent,
        latency,
        200,
        bool(body["degraded"]),
        tuple((f["stage"], f["reason"]) for f in body["fallbacks"]),
        frozenset(s for item in body["items"] for s in item["sources"]),
        server_seconds(response.headers.get("server-timing", "")),
    )


def server_seconds(server_timing: str) -> float | None:
    """The `total` of a `Server-Timing` header, in seconds (None if it has none).

    >>> server_timing = "retrieval;dur=12.50, total;dur=40.00"
    >>> server_seconds(server_timing)
    0.04
    """
    for part in server_timing.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if name == "total" and duration:
            return float(duration) / 1000.0
    return None


def recovered_at(
    outcomes: Sequence[Outcome], stages: frozenset[str | tuple[str, str]], run: int = 5
) -> float | None:
    """Send time of the first request that starts `run` 200s in a row without a fallback of
    any of `stages` (other fallbacks, e.g. a late ranker on a busy machine, do not count).

    An entry of `stages` is a stage name (any reason counts) or a (stage, reason) pair.
    """

    def hit(outcome: Outcome) -> bool:
        return any(s in stages or (s, r) in stages for s, r in outcome.fallbacks)

    for start in range(len(outcomes) - run + 1):
        window = outcomes[start : start + run]
        if all(o.status == 200 and not hit(o) for o in window):
            return window[0].sent
    return None


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


SPEED_REASONS = frozenset({"timeout", "no_budget", "skipped"})
"""Fallback reasons a busy machine alone can cause: a stage late for its deadline, a budget
spent before a stage's turn, a stage skipped because the one it needs was late."""


def settled(app: Any, user_ids: Sequence[int], n: int = 5) -> bool:
    """`n` answers in a row (`app.get`) are 200 and have no fallback but those a slow machine
    causes (`SPEED_REASONS`)."""
    bodies = [app.get(f"/recommendations/{u}", k=10) for u in user_ids[:n]]
    return all(
        r.status_code == 200 and all(f["reason"] in SPEED_REASONS for f in r.json()["fallbacks"])
        for r in bodies
    )


def unexpected_fallbacks(
    outcomes: Sequence[Outcome],
    allowed: Mapping[str, frozenset[str]] | None = None,
    default: frozenset[str] = SPEED_REASONS,
) -> Counter[tuple[str, str]]:
    """The (stage, reason) fallbacks of `outcomes` whose reason is not allowed for their
    stage: `allowed[stage]` if given, else `default` (what a slow machine may cause)."""
    allowed = allowed or {}
    return Counter(
        (stage, reason)
        for o in outcomes
        for stage, reason in o.fallbacks
        if reason not in allowed.get(stage, default)
    )


def report(name: str, outcomes: list[Outcome], **extra: Any) -> None:
    """Prints a scenario's figures: requests sent and failed, degraded, latencies (client
    side and the Controller's own), plus `extra` (the README "Reliability" table's source)."""
    latencies = [o.latency for o in outcomes]
    statuses = Counter(o.status for o in outcomes)
    degraded = sum(1 for o in outcomes if o.degraded)
    figures = " ".join(f"{k}={v}" for k, v in extra.items())
    server = [o.server for o in outcomes if o.server is not None]
    print(
        f"\n[{name}] sent={len(outcomes)} failed={len(outcomes) - statuses[200]} "
        f"degraded={degraded} statuses={dict(statuses)} "
        f"p50={1000 * percentile(latencies, 50):.0f}ms "
        f"p99={1000 * percentile(latencies, 99):.0f}ms "
        f"max={1000 * max(latencies, default=0):.0f}ms "
        f"server_max={1000 * max(server, default=0):.0f}ms {figures}"
    )
