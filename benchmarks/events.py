"""`python -m benchmarks.events` (`make bench-events`): event ingestion (`POST /events`) at
several concurrencies and batch sizes, and the recommendation latency while events stream in.

    python -m benchmarks.events --readme README.md          # c = 1, 4, 16; 1 and 50 events
    python -m benchmarks.events --concurrency 1,4 --batches 1 --duration 10

The app is deployed in process (a private Ray instance, `benchmarks.stack.serve_in_process`)
from `serve_config.yaml`, against the Redis the served tree was loaded into (`make
bench-events` starts the embedded one and runs `models.pipeline` first). First the GET
traffic alone (no events): `benchmarks.loadgen` in its own process, closed loop,
`--get-concurrency` clients asking `GET /recommendations/{user}?k=K` for the training split's
users. Then, for each batch size and concurrency, the same GET traffic while `concurrency`
clients of this process post events back to back (closed loop, `batch` events per request):
events/s counts the events of 202 answers, not requests; POST and GET latency percentiles;
every status code. After each level the benchmark waits until the appliers have consumed the
whole log (`drain_s`: the consumer group `appliers` has delivered the last entry and holds
nothing pending), so a level never starts on the previous one's backlog.

What is posted never enters a build: the events are for synthetic users (ids from
`USER_ID_MIN`, above every MovieLens user id; `users` of them), with unique `event_id`s, of
every type (ratings of random values), for random catalog movies; the Events replicas write
their offline part files into a temporary directory (`serve_in_process` overrides
`offline_dir`; deleted after the run), not `<run_dir>/events/<namespace>`; and at the end
`DELETE /users/{id}/events` removes every synthetic user's log entries, event state and
online rows (the answers' totals are in the JSON). Writes `events.json` and `events.png`
to `--out-dir`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.common import git_commit, load_average, machine_info, utc_now, write_json
from benchmarks.events_report import get_summary, markdown_table, plot, summarize_posts
from benchmarks.load import real_user_ids
from benchmarks.load_report import summarize_level
from benchmarks.load_runs import LoadBenchmarkError, LoadOptions, run_loadgen
from benchmarks.load_systems import ServerProcesses
from benchmarks.loadgen import LoadGenError
from benchmarks.stack import (
    SERVE_CONFIG,
    ServeConfig,
    StackError,
    add_app_arguments,
    add_readme_arguments,
    app_overrides,
    render_readme,
    serve_in_process,
)

EVENTS_JSON = "events.json"
EVENTS_PNG = "events.png"
USERS_FILE = "users.json"
README_BEGIN = "<!-- bench-events:begin (python -m benchmarks.events --render-only) -->"
README_END = "<!-- bench-events:end -->"
USER_ID_MIN = 2_000_000_000
"""Synthetic users start here: above every MovieLens user id, below the API's 2**31 - 1."""
EVENT_TYPES = ("rating", "watch", "click", "impression", "dismiss")
RATINGS = tuple(x / 2 for x in range(1, 11))  # 0.5 .. 5.0
NO_PROCESSES = ServerProcesses("not measured (the event benchmark reports latencies)")


class EventsBenchmarkError(RuntimeError):
    """The benchmark cannot run or the app misbehaved; the message says why."""


@dataclass(frozen=True)
class EventsOptions:
    """What to run.

    Attributes:
        concurrency: Posting clients per level, in order.
        batches: Events per request; every concurrency runs with each.
        warmup_s: Unrecorded seconds at the start of each level.
        duration_s: Recorded seconds of each level.
        get_concurrency: Clients asking for recommendations meanwhile (closed loop).
        users: Synthetic users the events are for.
        k: Movies per recommendation request.
        drain_timeout_s: How long to wait for the appliers after a level.
        out_dir: Where events.json and events.png go.
        config_path: The serve config.
        app_args: Overrides of the app's args (artifacts, run dir, ...).
        seed: The events' random choices.
    """

    concurrency: tuple[int, ...] = (1, 4, 16)
    batches: tuple[int, ...] = (1, 50)
    warmup_s: float = 3.0
    duration_s: float = 20.0
    get_concurrency: int = 1
    users: int = 64
    k: int = 10
    drain_timeout_s: float = 180.0
    out_dir: Path = Path("benchmarks/results")
    config_path: Path = SERVE_CONFIG
    app_args: dict[str, Any] = field(default_factory=dict)
    seed: int = 0


class EventFactory:
    """Synthetic events: every type, random catalog movies, unique ids."""

    def __init__(self, movie_ids: Sequence[int], users: int, seed: int = 0) -> None:
        if not movie_ids or users < 1:
            raise EventsBenchmarkError("need catalog movies and at least one synthetic user")
        self.movie_ids = list(movie_ids)
        self.user_ids = [USER_ID_MIN + i for i in range(users)]
        self.run_id = uuid.uuid4().hex[:12]
        self._rng = random.Random(seed)  # noqa: S311 - reproducible choices, not secrets
        self._n = 0

    def batch(self, size: int) -> list[dict[str, Any]]:
        """`size` new events (JSON-ready)."""
        out = []
        for _ in range(size):
            kind = EVENT_TYPES[self._n % len(EVENT_TYPES)]
            event: dict[str, Any] = {
                "event_id": f"bench-{self.run_id}-{self._n}",
                "user_id": self._rng.choice(self.user_ids),
                "movie_id": self._rng.choice(self.movie_ids),
                "type": kind,
            }
            if kind == "rating":
                event["value"] = self._rng.choice(RATINGS)
            out.append(event)
            self._n += 1
        return out


def auth_headers() -> dict[str, str]:
    """The API key header when `MOVIEREC_API_KEY` is set (the app then requires it)."""
    key = os.environ.get("MOVIEREC_API_KEY")
    return {"X-API-Key": key} if key else {}


async def post_stream(
    url: str,
    factory: EventFactory,
    batch: int,
    concurrency: int,
    warmup_s: float,
    stop: asyncio.Event,
) -> tuple[list[list[Any]], float]:
    """`concurrency` clients post `batch` events back to back until `stop` is set.

    Returns:
        (samples [latency_ms, status, events, accepted, duplicates] of the POSTs that
        completed between the end of the warm-up and `stop`, that window in seconds).
    """
    import httpx

    samples: list[tuple[float, list[Any]]] = []
    started = time.perf_counter()
    record_from = started + warmup_s

    async def client_loop(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            events = factory.batch(batch)
            sent = time.perf_counter()
            try:
                response = await client.post("/events", json={"events": events})
                status = response.status_code
                body = response.json() if status == 202 else {}
            except (httpx.HTTPError, ValueError):
                status, body = 0, {}
            done = time.perf_counter()
            if done >= record_from:
                sample = [
                    (done - sent) * 1000.0,
                    status,
                    len(events),
                    int(body.get("accepted", 0)),
                    int(body.get("duplicates", 0)),
                ]
                samples.append((done, sample))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=url, timeout=60.0, limits=limits, headers=auth_headers()
    ) as client:
        tasks = [asyncio.create_task(client_loop(client)) for _ in range(concurrency)]
        await stop.wait()
        stopped = time.perf_counter()
        await asyncio.gather(*tasks)
    window = max(stopped - record_from, 0.0)
    return [s for done, s in samples if done <= stopped], window


def event_keys(config: ServeConfig) -> Any:
    """The served tree's event log keys (`movierec.events.EventKeys`)."""
    from deployments.app import AppArgs
    from movierec.events import EventKeys

    return EventKeys(AppArgs.model_validate(config.args).context().layout.namespace)


def redis_url(config: ServeConfig) -> str:
    """The Redis the app uses (its args, `REDIS_URL`, or the run dir's embedded one)."""
    from deployments.app import AppArgs

    return AppArgs.model_validate(config.args).context().resolve_redis_url()


def wait_drained(url: str, keys: Any, timeout_s: float) -> float | None:
    """Seconds until the appliers' group has delivered the log's last entry and has nothing
    pending (None: not within `timeout_s`)."""
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            stream: dict[str, Any] = client.xinfo_stream(keys.stream)  # type: ignore[assignment]
            listed: list[dict[str, Any]] = client.xinfo_groups(keys.stream)  # type: ignore[assignment]
            last = stream["last-generated-id"]
            groups = {g["name"]: g for g in listed}
            group = groups.get(keys.group)
            if group and group["last-delivered-id"] == last and int(group["pending"]) == 0:
                return time.monotonic() - started
            time.sleep(0.1)
    finally:
        client.close()
    return None


def forget_users(url: str, user_ids: Sequence[int]) -> dict[str, int]:
    """`DELETE /users/{id}/events` for each synthetic user; what the answers removed."""
    import httpx

    totals = {"users": len(user_ids), "events": 0, "movies": 0, "failed": 0}
    with httpx.Client(base_url=url, timeout=120.0, headers=auth_headers()) as client:
        for user_id in user_ids:
            try:
                response = client.delete(f"/users/{user_id}/events")
            except httpx.HTTPError:
                totals["failed"] += 1
                continue
            if response.status_code != 200:
                totals["failed"] += 1
                continue
            body = response.json()
            totals["events"] += int(body.get("events", 0))
            totals["movies"] += int(body.get("movies", 0))
    return totals


def uptime() -> str:
    """`uptime`'s line (the machine's load while the benchmark ran)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unavailable"


def run(options: EventsOptions) -> dict[str, Any]:
    """Runs every level (see the module doc) and returns the report."""
    from deployments.app import AppArgs
    from deployments.catalog import Catalog

    config = ServeConfig.load(options.config_path).with_overrides(args=options.app_args)
    context = AppArgs.model_validate(config.args).context()
    users = real_user_ids(config)
    factory = EventFactory(
        sorted(Catalog.load(context.layout.catalog_dir).movies), options.users, options.seed
    )
    keys, store = event_keys(config), redis_url(config)
    load_options = LoadOptions(warmup_s=options.warmup_s, duration_s=options.duration_s)
    load_options.k = options.k
    load_start, started = load_average(), time.perf_counter()
    levels: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="movierec-events-bench-") as tmp:
        workdir = Path(tmp)
        users_file = workdir / USERS_FILE
        users_file.write_text(json.dumps(users))
        with serve_in_process(config) as url:  # Events' offline_dir: a private temp dir
            try:
                idle = summarize_level(
                    run_loadgen(
                        url,
                        options.get_concurrency,
                        load_options,
                        users_file,
                        NO_PROCESSES,
                        workdir,
                    )
                )
                for batch in options.batches:
                    for concurrency in options.concurrency:
                        level = asyncio.run(
                            _level(url, factory, batch, concurrency, options, load_options, workdir)
                        )
                        level["drain_s"] = wait_drained(store, keys, options.drain_timeout_s)
                        _progress(level)
                        levels.append(level)
            finally:
                cleanup = forget_users(url, factory.user_ids)
    return {
        "benchmark": "events",
        "created": utc_now(),
        "commit": git_commit(),
        "machine": machine_info(),
        "load_average": {"start": load_start, "end": load_average()},
        "uptime": uptime(),
        "setup": {
            "mode": "in-process Ray (private instance), serve_config.yaml",
            "concurrency": list(options.concurrency),
            "batches": list(options.batches),
            "warmup_s": options.warmup_s,
            "duration_s": options.duration_s,
            "get_concurrency": options.get_concurrency,
            "k": options.k,
            "users": options.users,
            "user_id_min": USER_ID_MIN,
            "known_users": len(users),
            "durability": config.user_config("Events").get("durability", "aof"),
            "namespace": keys.namespace,
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        "idle_get": get_summary(idle),
        "levels": levels,
        "cleanup": cleanup,
    }


async def _level(
    url: str,
    factory: EventFactory,
    batch: int,
    concurrency: int,
    options: EventsOptions,
    load_options: LoadOptions,
    workdir: Path,
) -> dict[str, Any]:
    """One level: the GET load generator in its own process (reading `USERS_FILE` in
    `workdir`), events posted meanwhile."""
    stop = asyncio.Event()

    async def get_traffic() -> dict[str, Any]:
        try:
            return await asyncio.to_thread(
                run_loadgen,
                url,
                options.get_concurrency,
                load_options,
                workdir / USERS_FILE,
                NO_PROCESSES,
                workdir,
            )
        finally:
            stop.set()

    gets = asyncio.create_task(get_traffic())
    posts, window = await post_stream(url, factory, batch, concurrency, options.warmup_s, stop)
    raw = await gets
    return {
        "post": summarize_posts(posts, window, batch, concurrency),
        "get": get_summary(summarize_level(raw)),
    }


def _progress(level: dict[str, Any]) -> None:
    post, get = level["post"], level["get"]
    p50 = (post["latency_ms"] or {}).get("p50_ms", float("nan"))
    get_p50 = (get.get("latency_ms") or {}).get("p50_ms", float("nan"))
    print(
        f"batch {post['batch']:>3} c={post['concurrency']:>2}: {post['events_per_s']:8.1f} "
        f"events/s, POST p50 {p50:.1f} ms, codes {post['status_codes']}; GET p50 "
        f"{get_p50:.1f} ms, codes {get.get('status_codes')}; drained {level['drain_s']}",
        flush=True,
    )


def write(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Writes events.json and events.png; returns their paths."""
    path = write_json(out_dir / EVENTS_JSON, report)
    return path, plot(report, out_dir / EVENTS_PNG)


def _levels_arg(text: str) -> tuple[int, ...]:
    values = tuple(int(x) for x in text.split(",") if x.strip())
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integers >= 1: {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, runs, writes the JSON and the PNG; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.events", description=__doc__)
    parser.add_argument("--concurrency", type=_levels_arg, default=(1, 4, 16))
    parser.add_argument("--batches", type=_levels_arg, default=(1, 50), help="events/request")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not recorded")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds recorded")
    parser.add_argument("--get-concurrency", type=int, default=1)
    parser.add_argument("--users", type=int, default=64, help="synthetic users")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    add_app_arguments(parser)
    add_readme_arguments(parser, "event-ingestion table")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out_dir / EVENTS_JSON, args.readme or Path("README.md"))
    try:
        if max(args.batches) > 500:
            raise EventsBenchmarkError("--batches: at most 500 events per request (the API's)")
        if args.duration <= 0 or args.warmup < 0 or args.get_concurrency < 1 or args.k < 1:
            raise EventsBenchmarkError("need --duration > 0, --warmup >= 0, --get-concurrency >= 1")
        options = EventsOptions(
            concurrency=args.concurrency,
            batches=args.batches,
            warmup_s=args.warmup,
            duration_s=args.duration,
            get_concurrency=args.get_concurrency,
            users=args.users,
            k=args.k,
            out_dir=args.out_dir,
            config_path=args.config,
            app_args=app_overrides(args),
        )
        json_path, png_path = write(run(options), args.out_dir)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except (
        EventsBenchmarkError,
        LoadBenchmarkError,
        StackError,
        LoadGenError,
        OSError,
        ValueError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(json.loads(json_path.read_text())))
    print(f"wrote {json_path} and {png_path}")
    return 0 if args.readme is None else render(json_path, args.readme)


def render(json_path: Path, readme: Path) -> int:
    """Regenerates the README's event-ingestion table from `json_path`; returns the status."""
    return render_readme(
        json_path, readme, README_BEGIN, README_END, markdown_table, "event-ingestion table"
    )


if __name__ == "__main__":
    sys.exit(main())
