"""Open-loop capacity of one system: fixed arrival rates, searched (`benchmarks.capacity`).

    python -m benchmarks.openloop --url http://127.0.0.1:8000 --users-file users.json \
        --out capacity.json [--start-rate 20] [--probe-duration 4] [--time-cap 180]

Each probe offers `GET /recommendations/{user_id}?k=K` at a fixed rate: request i starts at
t0 + i / rate whatever the earlier ones are doing (gevent greenlets on a schedule, the
HTTP client of locust's FastHttpUser: geventhttpclient, up to `--connections` keep-alive
connections). Latency runs from the scheduled start, so time spent waiting for a free
connection counts (no coordinated omission). The first `--probe-warmup` seconds of a probe are
not recorded; requests scheduled in the next `--probe-duration` seconds are. A probe is
bounded: at most `--connections` x 4 requests outstanding (later arrivals count as failed),
and requests still running `--request-timeout` seconds after the last arrival are abandoned
(failed). Loopback URLs only; no monkey patching (geventhttpclient uses gevent sockets).

A probe passes when at most `--max-bad-share` of its requests were degraded or failed and
the p99 of its HTTP 200 answers is within `--p99-budget-ms` (the Controller's
`timeouts.total`).

Output (JSON): `benchmarks.capacity.search`'s result plus {"criteria", "tool"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.capacity import Criteria, SearchSettings, passes, search
from benchmarks.common import percentiles
from benchmarks.loadgen import (
    DEGRADED_MARK,
    LoadGenError,
    check_loopback,
    parse_fallbacks,
    user_cycle,
)

OUTSTANDING_PER_CONNECTION = 4


def probe(
    url: str,
    rate: float,
    warmup_s: float,
    duration_s: float,
    user_ids: Sequence[int],
    k: int,
    connections: int,
    request_timeout_s: float,
    criteria: Criteria,
) -> dict[str, Any]:
    """One fixed-rate probe (see the module doc).

    Returns:
        {"passed", "offered", "good", "ok", "degraded", "failed", "dropped", "bad_share",
        "goodput" (good answers per recorded second), "p50_ms", "p99_ms" (HTTP 200 answers),
        "fallbacks" ({"stage:reason": n})}.
    """
    import gevent
    from geventhttpclient import HTTPClient
    from geventhttpclient.url import URL

    client = HTTPClient.from_url(
        URL(url),
        concurrency=connections,
        connection_timeout=request_timeout_s,
        network_timeout=request_timeout_s,
    )
    ids = user_cycle(user_ids)
    max_outstanding = connections * OUTSTANDING_PER_CONNECTION
    recorded: list[tuple[float, int, str]] = []  # (latency ms, status, fallbacks) or status 0
    state = {"outstanding": 0, "dropped": 0}
    path_of = f"/recommendations/{{}}?k={k}".format

    def one(scheduled: float, user_id: int, record: bool) -> None:
        status, fallbacks = 0, ""
        try:
            response = client.get(path_of(user_id))
            body = response.read()
            status = int(response.status_code)
            if DEGRADED_MARK in body:
                fallbacks = parse_fallbacks(body) or "unknown:unknown"
        except Exception:
            status = 0
        finally:
            state["outstanding"] -= 1
        if record:
            recorded.append((1000.0 * (time.perf_counter() - scheduled), status, fallbacks))

    n_warmup = round(rate * warmup_s)
    n_total = n_warmup + max(round(rate * duration_s), 1)
    greenlets = []
    t0 = time.perf_counter()
    for i in range(n_total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            gevent.sleep(delay)
        record = i >= n_warmup
        if state["outstanding"] >= max_outstanding:
            state["dropped"] += int(record)
            continue
        state["outstanding"] += 1
        greenlets.append(gevent.spawn(one, scheduled, next(ids), record))
    gevent.joinall(greenlets, timeout=request_timeout_s)
    gevent.killall([g for g in greenlets if not g.dead], block=True, timeout=5.0)
    client.close()

    offered = n_total - n_warmup
    answers = [r for r in recorded if r[1] == 200]
    good = sum(1 for r in answers if not r[2])
    fallbacks: dict[str, int] = {}
    for _, _, entries in answers:
        for entry in filter(None, entries.split(",")):
            fallbacks[entry] = fallbacks.get(entry, 0) + 1
    latencies = [r[0] for r in answers]
    stats = percentiles(latencies) if latencies else {}
    p99 = float(stats["p99_ms"]) if stats else None
    passed, bad = passes(offered, good, p99, criteria)
    return {
        "passed": passed,
        "offered": offered,
        "good": good,
        "ok": len(answers),
        "degraded": len(answers) - good,
        "failed": offered - len(answers),
        "dropped": state["dropped"],
        "bad_share": bad,
        "goodput": good / duration_s,
        "p50_ms": float(stats["p50_ms"]) if stats else None,
        "p99_ms": p99,
        "fallbacks": dict(sorted(fallbacks.items())),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, searches, writes the JSON; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.openloop", description=__doc__)
    parser.add_argument("--url", required=True, help="base URL of the API (loopback only)")
    parser.add_argument("--users-file", type=Path, required=True, help="JSON list of user ids")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--start-rate", type=float, default=20.0, help="requests/s")
    parser.add_argument("--growth", type=float, default=2.0)
    parser.add_argument("--min-rate", type=float, default=1.0)
    parser.add_argument("--max-rate", type=float, default=2000.0)
    parser.add_argument("--tolerance", type=float, default=0.1)
    parser.add_argument("--max-probes", type=int, default=12)
    parser.add_argument("--time-cap", type=float, default=180.0, help="seconds, whole search")
    parser.add_argument("--probe-warmup", type=float, default=1.0, help="seconds per probe")
    parser.add_argument("--probe-duration", type=float, default=4.0, help="seconds per probe")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--request-timeout", type=float, default=5.0, help="seconds")
    parser.add_argument("--max-bad-share", type=float, default=0.01)
    parser.add_argument("--p99-budget-ms", type=float, default=150.0)
    args = parser.parse_args(argv)
    try:
        url = check_loopback(args.url)
        if args.probe_duration <= 0 or args.probe_warmup < 0 or args.k < 1:
            raise LoadGenError("need --probe-duration > 0, --probe-warmup >= 0, --k >= 1")
        if args.connections < 1 or args.request_timeout <= 0:
            raise LoadGenError("need --connections >= 1 and --request-timeout > 0")
        settings = SearchSettings(
            start_rate=args.start_rate,
            growth=args.growth,
            min_rate=args.min_rate,
            max_rate=args.max_rate,
            tolerance=args.tolerance,
            max_probes=args.max_probes,
            time_cap_s=args.time_cap,
        )
        criteria = Criteria(args.max_bad_share, args.p99_budget_ms)
        user_ids = [int(u) for u in json.loads(args.users_file.read_text())]
        result = search(
            lambda rate: probe(
                url,
                rate,
                args.probe_warmup,
                args.probe_duration,
                user_ids,
                args.k,
                args.connections,
                args.request_timeout,
                criteria,
            ),
            settings,
        )
    except (LoadGenError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import geventhttpclient

    result["criteria"] = asdict(criteria)
    result["probe"] = {
        "warmup_s": args.probe_warmup,
        "duration_s": args.probe_duration,
        "connections": args.connections,
        "request_timeout_s": args.request_timeout,
    }
    result["tool"] = {
        "name": "geventhttpclient",
        "version": getattr(geventhttpclient, "__version__", None),
        "loop": "open: requests start on a fixed schedule",
    }
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
