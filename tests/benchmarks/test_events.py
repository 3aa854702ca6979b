"""The event benchmark (`benchmarks.events`): its pure parts without services, and a smoke run
end to end for a few seconds on tiny real artifacts, real Redis (append-only file on, 202
after WAITAOF) and a real Ray Serve app in process.

The smoke run checks that every key of `events.json` is there and that the run cleaned up
after itself; no speed threshold is asserted (the figures belong to `make bench-events`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.events import USER_ID_MIN, EventFactory
from benchmarks.events_report import GET_KEYS, markdown_table, summarize_posts
from tests.benchmarks.conftest import app_args
from tests.deployments._artifacts import TinyArtifacts

POST_KEYS = {
    "batch",
    "concurrency",
    "window_s",
    "requests",
    "ok",
    "errors",
    "status_codes",
    "events",
    "accepted",
    "duplicates",
    "events_per_s",
    "requests_per_s",
    "latency_ms",
}
PERCENTILE_KEYS = {"n", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", "p99_ms"}


def test_the_factory_makes_valid_unique_events_of_every_type_for_synthetic_users() -> None:
    factory = EventFactory([1, 2, 3], users=4, seed=1)
    events = factory.batch(20) + factory.batch(5)
    assert len({e["event_id"] for e in events}) == 25
    assert {e["type"] for e in events} == {"rating", "watch", "click", "impression", "dismiss"}
    assert all(USER_ID_MIN <= e["user_id"] < USER_ID_MIN + 4 for e in events)
    assert all(e["movie_id"] in (1, 2, 3) for e in events)
    for event in events:
        assert ("value" in event) == (event["type"] == "rating")
        assert 0.5 <= event.get("value", 0.5) <= 5.0
        assert len(event["event_id"]) <= 64


def test_events_per_second_count_acknowledged_events_not_requests() -> None:
    posts = [[10.0, 202, 50, 50, 0], [30.0, 202, 50, 48, 2], [5.0, 503, 50, 0, 0]]
    summary = summarize_posts(posts, 2.0, batch=50, concurrency=2)
    assert set(summary) == POST_KEYS
    assert summary["events"] == 100 and summary["events_per_s"] == 50.0
    assert summary["requests_per_s"] == 1.0
    assert summary["accepted"] == 98 and summary["duplicates"] == 2
    assert summary["errors"] == 1 and summary["status_codes"] == {"202": 2, "503": 1}
    assert summary["latency_ms"]["max_ms"] == 30.0  # the 503 is not a latency sample
    assert summarize_posts([], 1.0, 1, 1)["latency_ms"] is None


@pytest.mark.integration
def test_the_event_benchmark_writes_every_key(
    tiny: tuple[Path, TinyArtifacts], tmp_path: Path
) -> None:
    import redis

    from benchmarks.events import EventsOptions, event_keys, redis_url, run, write
    from benchmarks.stack import ServeConfig

    run_dir, artifacts = tiny
    options = EventsOptions(
        concurrency=(1, 2),
        batches=(1, 5),
        warmup_s=0.5,
        duration_s=1.0,
        users=3,
        out_dir=tmp_path,
        app_args=app_args(run_dir, artifacts),
    )
    json_path, png_path = write(run(options), tmp_path)
    report: dict[str, Any] = json.loads(json_path.read_text())
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    assert set(report) == {
        "benchmark",
        "created",
        "commit",
        "machine",
        "load_average",
        "uptime",
        "setup",
        "idle_get",
        "levels",
        "cleanup",
    }
    assert set(report["load_average"]) == {"start", "end"} and "load average" in report["uptime"]
    assert set(report["setup"]) == {
        "mode",
        "concurrency",
        "batches",
        "warmup_s",
        "duration_s",
        "get_concurrency",
        "k",
        "users",
        "user_id_min",
        "known_users",
        "durability",
        "namespace",
        "elapsed_s",
    }
    assert report["setup"]["durability"] == "aof"
    assert set(report["idle_get"]) == set(GET_KEYS)
    assert report["idle_get"]["ok"] > 0 and report["idle_get"]["errors"] == 0
    levels = report["levels"]
    assert [(lv["post"]["batch"], lv["post"]["concurrency"]) for lv in levels] == [
        (1, 1),
        (1, 2),
        (5, 1),
        (5, 2),
    ]
    posted = 0
    for lv in levels:
        assert set(lv) == {"post", "get", "drain_s"}
        post, get = lv["post"], lv["get"]
        assert set(post) == POST_KEYS and set(get) == set(GET_KEYS)
        assert post["ok"] > 0 and post["errors"] == 0, post["status_codes"]
        assert post["events"] == post["ok"] * post["batch"] == post["accepted"]
        assert set(post["latency_ms"]) == PERCENTILE_KEYS
        assert get["ok"] > 0 and get["errors"] == 0, get["status_codes"]
        assert set(get["latency_ms"]) == PERCENTILE_KEYS
        assert lv["drain_s"] is not None  # the appliers consumed the whole log
        posted += post["events"]
    # every synthetic user's events were deleted again (at least those acknowledged in the
    # recorded windows), and nothing of theirs is left in Redis
    cleanup = report["cleanup"]
    assert cleanup["users"] == 3 and cleanup["failed"] == 0
    assert cleanup["events"] >= posted
    config = ServeConfig.load().with_overrides(args=app_args(run_dir, artifacts))
    keys = event_keys(config)
    client = redis.Redis.from_url(redis_url(config))
    try:
        for user_id in range(USER_ID_MIN, USER_ID_MIN + 3):
            assert not client.exists(keys.state(user_id), keys.base(user_id))
    finally:
        client.close()
    assert "| 5 | 2 |" in markdown_table(report)
