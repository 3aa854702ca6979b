"""Closed-loop HTTP load at one concurrency level: locust's `FastHttpUser`, headless, as a library.

    python -m benchmarks.loadgen --url http://127.0.0.1:8000 --concurrency 16 \
        --warmup 5 --duration 20 --users-file users.json --out level.json

`concurrency` users each hold one keep-alive connection and send
`GET /recommendations/{user_id}?k=K` back to back (no think time: a closed loop), the user
ids cycling through a shuffled list of real users. The first `warmup` seconds are not
recorded; then every request that COMPLETES within the next `duration` seconds is. The
process then stops by itself (bounded in time), loopback URLs only.

Why locust's FastHttpUser: on this 2-core machine the load generator competes with the
server for CPU, so its own cost per request matters. Measured against a trivial uvicorn app
(same response size, concurrency 4): httpx's AsyncClient costs ~1.0 ms of client CPU per
request, locust's geventhttpclient-based client ~0.22 ms. The generator's CPU over the
window is measured and reported with every run.

Runs in its own process: importing locust monkey-patches the standard library with gevent.

Output (JSON): {"concurrency", "k", "warmup_s", "window_s", "warmup_requests",
"samples": [[latency_ms, status, degraded, server_timing, fallbacks, cold_start], ...],
"cpu_s" (this process), "server_cpu_s" (the `--pids` processes plus the descendants of
`--root-pid`; null without), "server_cpu_by_role" and "server_rss_by_role"
(`benchmarks.processes` roles; memory at the end of the window), "server_pids" (those
measured), "server_roles" (pid -> role), "machine_cpu_busy" (share of all cores busy),
"load_average", "tool"}; status 0 means a transport error; degraded is 1 when the answer says
`"degraded":true`, and then fallbacks lists its fallbacks as "stage:reason,..."
(`parse_fallbacks`); cold_start is 1 for a cold-start answer (never expected: the users are
known). All CPU figures cover the recorded window only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.processes import ProcessMeter

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEGRADED_MARK = b'"degraded":true'
COLD_START_MARK = b'"cold_start":true'


class LoadGenError(ValueError):
    """Invalid load-generator arguments; the message says which."""


def check_loopback(url: str) -> str:
    """The URL without a trailing slash; refuses anything but http on a loopback address.

    Raises:
        LoadGenError: Not http(s), or the host is not loopback.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadGenError(f"--url must be an http URL, got {url!r}")
    if parts.hostname not in LOOPBACK_HOSTS and not parts.hostname.startswith("127."):
        raise LoadGenError(f"--url must be a loopback address (127.0.0.0/8, ::1), got {url!r}")
    return url.rstrip("/")


def user_cycle(user_ids: Sequence[int], seed: int = 0) -> Iterator[int]:
    """The user ids shuffled once (fixed seed), then repeated forever."""
    if not user_ids:
        raise LoadGenError("no user ids to request")
    order = list(user_ids)
    random.Random(seed).shuffle(order)  # noqa: S311 - a reproducible order, not a secret
    return itertools.cycle(order)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


FALLBACK_ENTRY = re.compile(rb'"stage":"([A-Za-z0-9_]+)","reason":"([A-Za-z0-9_]+)"')


def parse_fallbacks(content: bytes) -> str:
    """The fallbacks of a degraded answer, compactly: "stage:reason,stage:reason".

    Example: b'{"degraded":true,"fallbacks":[{"stage":"content","reason":"timeout"}]}'
    -> "content:timeout". Only degraded answers are parsed (a regex on the raw body, not a
    JSON parse), so full answers cost the generator nothing more.
    """
    return ",".join(
        f"{stage.decode()}:{reason.decode()}" for stage, reason in FALLBACK_ENTRY.findall(content)
    )


def run_level(
    url: str,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    user_ids: Sequence[int],
    k: int,
    server_pids: Sequence[int] = (),
    server_root: int | None = None,
    exclude_pids: Sequence[int] = (),
) -> dict[str, Any]:
    """Drives one level and returns the recorded samples (see the module doc)."""
    import gevent
    import locust
    from locust import FastHttpUser, constant, task
    from locust.env import Environment

    ids = user_cycle(user_ids)
    samples: list[list[Any]] = []
    state = {"recording": False, "warmup_requests": 0}

    class RecommendationUser(FastHttpUser):
        host = url
        wait_time = constant(0)
        network_timeout = 30.0
        connection_timeout = 10.0
        concurrency = 1  # one connection per user: a closed loop of `concurrency` clients

        @task
        def recommend(self) -> None:
            self.client.get(f"/recommendations/{next(ids)}?k={k}", name="/recommendations")

    def on_request(response_time: float, response: Any, exception: Any, **_: Any) -> None:
        if not state["recording"]:
            state["warmup_requests"] += 1
            return
        status = 0 if response is None else int(getattr(response, "status_code", 0) or 0)
        content = (getattr(response, "content", None) or b"") if status else b""
        headers = getattr(response, "headers", None) or {}
        timing = headers.get("server-timing", "") if status else ""
        ok = status if exception is None or status >= 400 else 0
        degraded = DEGRADED_MARK in content
        fallbacks = parse_fallbacks(content) if degraded else ""
        cold = int(COLD_START_MARK in content)
        samples.append([float(response_time), ok, int(degraded), timing, fallbacks, cold])

    env = Environment(user_classes=[RecommendationUser], catch_exceptions=True)
    env.events.request.add_listener(on_request)
    runner = env.create_local_runner()
    runner.start(concurrency, spawn_rate=100)  # at most 0.32 s to start 32 users
    meter = ProcessMeter(server_pids, server_root, exclude_pids)
    gevent.sleep(warmup_s)
    meter.start()
    cpu_start, started = _cpu_seconds(), time.perf_counter()
    state["recording"] = True
    gevent.sleep(duration_s)
    state["recording"] = False
    window = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_start
    reading = meter.stop()
    runner.quit()
    return {
        "concurrency": concurrency,
        "k": k,
        "warmup_s": warmup_s,
        "window_s": window,
        "warmup_requests": state["warmup_requests"],
        "samples": samples,
        "cpu_s": cpu,
        "server_cpu_s": reading.cpu_s,
        "server_cpu_by_role": reading.cpu_by_role,
        "server_rss_by_role": reading.rss_by_role,
        "server_pids": reading.pids,
        "server_roles": {str(pid): role for pid, role in reading.roles.items()},
        "machine_cpu_busy": reading.machine_busy,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "tool": {"name": "locust", "version": locust.__version__, "user_class": "FastHttpUser"},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, runs one level, writes the JSON; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the API (loopback only)")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds not recorded")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds recorded")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--users-file", type=Path, required=True, help="JSON list of user ids")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--pids", default="", help="comma-separated server process ids whose CPU to measure"
    )
    parser.add_argument("--root-pid", type=int, help="measure every descendant of this process too")
    parser.add_argument("--exclude-pids", default="", help="descendants not to count")
    args = parser.parse_args(argv)
    try:
        url = check_loopback(args.url)
        if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0 or args.k < 1:
            raise LoadGenError("need --concurrency >= 1, --duration > 0, --warmup >= 0, --k >= 1")
        user_ids = [int(u) for u in json.loads(args.users_file.read_text())]
        pids = [int(p) for p in args.pids.split(",") if p.strip()]
        exclude = [int(p) for p in args.exclude_pids.split(",") if p.strip()]
        result = run_level(
            url,
            args.concurrency,
            args.warmup,
            args.duration,
            user_ids,
            args.k,
            pids,
            args.root_pid,
            exclude,
        )
    except (LoadGenError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
