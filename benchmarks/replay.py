"""`python -m benchmarks.replay` (`make bench-replay`): does the real-time feedback loop help?
A session replay over HTTP, on eval artifacts built for its own split.

    python -m benchmarks.replay --readme README.md
    python -m benchmarks.replay --new-users 50 --known-users 200     # a quicker run

Split and build. `benchmarks.replay_protocol.replay_split` on the variant's ratings: 100
users drawn at random (seed 0) are *new* (none of their ratings, and no demographics row,
reach the build, so the model and the feature store do not know them); every other user is
*known*, with their most recent 20 % of ratings held out (at least 2). The eval tree is
built by the ordinary build (`models.pipeline.build`, the split given as a `PresetSplit`)
into `<artifacts_dir>/replay/<variant>/eval`; every step is fingerprinted as in `make
artifacts`, so a second run with the same split reuses it without training.

Serving. A private embedded Redis (a temporary run dir; the tree's namespace is the eval
tree's, and the replay writes events, so it never shares a Redis) is loaded with the tree;
the real app is deployed in process on it (`benchmarks.stack.serve_in_process`: its Events
deployment exports to a private temporary directory, so no replayed event can reach a build;
the Redis with the log is discarded after the run). The Controller's stage deadlines are
relaxed (`QUALITY_TIMEOUTS`, as the e2e tests that check answers do: this run measures the
lists, not the latency budget; `--production-timeouts` keeps serve_config.yaml's). Everything
else is talked to over HTTP, one client.

Protocol (see `benchmarks.replay_protocol` for the halves and the scoring):

1. No events yet. Every known user: GET /recommendations (arm a); every new user: the same,
   a cold start (arm c).
2. POST /events: every known user's first half as `rating` events (their values and
   original timestamps); every new user's likes of their first half (rating >= the Events
   deployment's `like_threshold`, 4.0) the same way. New users without such a like post
   nothing and are not scored in c or d.
3. Wait until the applier has applied them: `/healthz` reports, per Events replica, the log
   entries its applier has applied (`stages.events.detail.applier.entries`, counted after
   the user's features are written online); wait until the sum has grown by the number of
   accepted events (bounded by `--wait-timeout`; the seconds are reported).
4. GET again: arm b (known users), arm d (new users; an answer still `cold_start: true` is
   asked again like a degraded one, and counted).

Each arm's list: k plus the first half's size asked for, the first half removed, the first
k scored against the second half (nDCG@k, recall@k, P@k, MAP@k by `models.evaluation`'s
functions), so both arms of a user are scored on the same held-out set. A degraded answer
(a stage failed or was late: the response's `degraded`) is asked again up to `--retries`
times; a user still degraded in either arm of a pair is left out of both arms' scores, and
the counts are reported per arm. Writes `replay.json` to `--out-dir`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.common import git_commit, load_average, machine_info, utc_now, write_json
from benchmarks.events import auth_headers, forget_users, uptime
from benchmarks.replay_protocol import (
    Answer,
    ReplaySplit,
    Session,
    chunked,
    rating_events,
    replay_split,
    score,
)
from benchmarks.replay_report import markdown_table
from benchmarks.stack import (
    RELAXED_TIMEOUTS,
    SERVE_CONFIG,
    ServeConfig,
    StackError,
    add_readme_arguments,
    render_readme,
    serve_in_process,
)

REPLAY_JSON = "replay.json"
REPLAY_TREE = "replay"
"""The tree lives in `<artifacts_dir>/replay/<variant>/eval`."""
RUN_ID = uuid.uuid4().hex[:12]
"""Names this process's events (`event_id`s)."""
README_BEGIN = "<!-- bench-replay:begin (python -m benchmarks.replay --render-only) -->"
README_END = "<!-- bench-replay:end -->"
QUALITY_TIMEOUTS = RELAXED_TIMEOUTS


class ReplayError(RuntimeError):
    """The replay cannot run or the app misbehaved; the message says why."""


@dataclass(frozen=True)
class ReplayOptions:
    """What to run (see the module doc)."""

    variant: str = "ml-100k"
    artifacts_dir: Path = Path("artifacts")
    k: int = 10
    test_share: float = 0.2
    min_test: int = 2
    new_users: int = 100
    known_users: int | None = None
    seed: int = 0
    retries: int = 3
    wait_timeout_s: float = 300.0
    production_timeouts: bool = False
    config_path: Path = SERVE_CONFIG
    out_dir: Path = Path("benchmarks/results")


class AppClient:
    """The few HTTP calls of the replay, on one connection."""

    def __init__(self, url: str, retries: int) -> None:
        import httpx

        self._http = httpx.Client(base_url=url, timeout=60.0, headers=auth_headers())
        self.retries = retries

    def close(self) -> None:
        """Closes the connection."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; a 503 or 429 (overload, rate limit) is retried after its
        Retry-After, up to 10 times."""
        for _ in range(10):
            response = self._http.request(method, path, **kwargs)
            if response.status_code not in (429, 503):
                return response
            time.sleep(min(float(response.headers.get("retry-after", "1")), 5.0))
        raise ReplayError(f"{method} {path}: still HTTP {response.status_code} after 10 tries")

    def recommend(self, user_id: int, k: int, again: Callable[[Answer], bool]) -> Answer:
        """GET /recommendations/{user_id}?k=k, asked again (up to `retries` times, 0.5 s
        apart) while `again(answer)`."""
        answer: Answer | None = None
        for attempt in range(1, self.retries + 2):
            response = self._send("GET", f"/recommendations/{user_id}", params={"k": k})
            if response.status_code != 200:
                raise ReplayError(
                    f"user {user_id}: HTTP {response.status_code}: {response.text[:300]}"
                )
            body = response.json()
            ids = [int(item["movie_id"]) for item in body["items"]]
            if len(set(ids)) != len(ids):
                raise ReplayError(f"user {user_id}: the answer repeats a movie: {ids}")
            current = Answer(
                ids=ids,
                degraded=bool(body.get("degraded")),
                cold_start=bool(body.get("cold_start")),
                model_version=str(body.get("model_version")),
                attempts=attempt,
                degraded_first=answer.degraded_first if answer else bool(body.get("degraded")),
                fallbacks=sorted({str(f.get("stage")) for f in body.get("fallbacks") or []}),
            )
            answer = current
            if not again(current):
                break
            time.sleep(0.5)
        assert answer is not None
        return answer

    def post_events(self, events: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """POST /events in requests of at most 500; what the answers counted."""
        totals: dict[str, Any] = {"events": len(events), "posts": 0, "accepted": 0}
        totals["duplicates"] = 0
        started = time.perf_counter()
        for batch in chunked(events):
            response = self._send("POST", "/events", json={"events": batch})
            if response.status_code != 202:
                raise ReplayError(
                    f"POST /events: HTTP {response.status_code}: {response.text[:300]}"
                )
            body = response.json()
            totals["posts"] += 1
            totals["accepted"] += int(body["accepted"])
            totals["duplicates"] += int(body["duplicates"])
        totals["seconds"] = round(time.perf_counter() - started, 2)
        return totals

    def applied(self) -> dict[str, int]:
        """Consumer -> log entries its applier has applied (the answering Events replica)."""
        response = self._send("GET", "/healthz")
        try:
            detail = response.json()["stages"]["events"]["detail"]["applier"]
            return {str(detail["consumer"]): int(detail["entries"])}
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"/healthz shows no applier progress: {response.text[:300]}") from exc

    def wait_applied(
        self, baseline: Mapping[str, int], accepted: int, timeout_s: float
    ) -> dict[str, Any]:
        """Polls `/healthz` until the appliers have applied `accepted` more entries than at
        `baseline` (summed over the replicas seen), or `timeout_s` passed."""
        latest = dict(baseline)
        started = time.monotonic()
        while True:
            latest.update(self.applied())
            done = sum(n - baseline.get(c, 0) for c, n in latest.items())
            waited = time.monotonic() - started
            if done >= accepted or waited > timeout_s:
                return {
                    "applied": done >= accepted,
                    "entries": done,
                    "seconds": round(waited, 2),
                    "replicas_seen": len(latest),
                }
            time.sleep(0.1)

    def baseline(self, polls: int = 5) -> dict[str, int]:
        """The appliers' counts before posting (a few polls, to meet every replica)."""
        seen: dict[str, int] = {}
        for _ in range(polls):
            seen.update(self.applied())
        return seen


def _ask_all(
    client: AppClient,
    sessions: Sequence[Session],
    k: int,
    again: Callable[[Answer], bool],
    label: str,
) -> dict[int, Answer]:
    out = {}
    for i, session in enumerate(sessions, start=1):
        out[session.user_id] = client.recommend(session.user_id, session.request_k(k), again)
        if i % 100 == 0 or i == len(sessions):
            print(f"  {label}: {i}/{len(sessions)}", flush=True)
    return out


def replay(
    url: str,
    split: ReplaySplit,
    k: int,
    like_threshold: float,
    retries: int = 3,
    wait_timeout_s: float = 300.0,
    cleanup: bool = False,
) -> dict[str, Any]:
    """Steps 1-4 of the module doc against the app at `url`; the arms, events and wait.

    `cleanup`: afterwards, `DELETE /users/{id}/events` for every replayed user (an app
    whose Redis outlives the run)."""
    client = AppClient(url, retries)
    known, new = split.known, [s for s in split.new if s.likes(like_threshold)]
    started = time.perf_counter()
    try:
        degraded = lambda a: a.degraded  # noqa: E731
        a = _ask_all(client, known, k, degraded, "a (known, no events)")
        c = _ask_all(client, new, k, degraded, "c (new, cold start)")
        events = [e for s in known for e in rating_events(s.user_id, s.first, RUN_ID)]
        events += [
            e for s in new for e in rating_events(s.user_id, s.likes(like_threshold), RUN_ID)
        ]
        before = client.baseline()
        posted = client.post_events(events)
        wait = client.wait_applied(before, posted["accepted"], wait_timeout_s)
        print(f"  posted {posted}; applied {wait}", flush=True)
        b = _ask_all(client, known, k, degraded, "b (known, first half posted)")
        d = _ask_all(client, new, k, lambda x: x.degraded or x.cold_start, "d (new, likes posted)")
        seconds = round(time.perf_counter() - started, 1)
    finally:
        removed = forget_users(url, [s.user_id for s in [*known, *new]]) if cleanup else None
        client.close()
    likes = [len(s.likes(like_threshold)) for s in new]
    return {
        "answers": {"a": a, "b": b, "c": c, "d": d},
        "events": {
            **posted,
            "known_users": len(known),
            "new_users": len(new),
            "new_users_without_likes": len(split.new) - len(new),
            "likes_per_new_user": {
                "min": min(likes, default=0),
                "max": max(likes, default=0),
                "mean": round(sum(likes) / len(likes), 2) if likes else 0.0,
            },
        },
        "wait": wait,
        "seconds": seconds,
        "cleanup": removed,
    }


def build_tree(
    split: ReplaySplit, options: ReplayOptions, dataset: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """The eval tree of `split` (built, or reused when every fingerprint matches).

    Returns:
        (layout, manifest, {"seconds", "steps": {step: "built" | "skipped"}}).
    """
    from models.pipeline.build import BuildOptions, PresetSplit, build
    from movierec.layout import ArtifactLayout

    users = dataset.users
    if users is not None:  # a new user has no demographics row either: the store lacks them
        users = users.loc[~users["user_id"].isin(split.new_user_ids)].reset_index(drop=True)
    name = (
        f"replay: temporal {split.settings['test_share']:g} (min {split.settings['min_test']}), "
        f"{split.settings['new_users']} new users (seed {split.settings['seed']})"
    )
    build_options = BuildOptions(
        variant=options.variant,
        mode="eval",
        artifacts_dir=options.artifacts_dir / REPLAY_TREE,
        split=PresetSplit(name, split.train, split.test),
    )
    steps: dict[str, str] = {}
    started = time.perf_counter()
    manifest = build(
        build_options,
        dataset=replace(dataset, users=users),
        on_step=lambda step, status: steps.__setitem__(step, status),
    )
    layout = ArtifactLayout.of(build_options.artifacts_dir, options.variant, "eval")
    return layout, manifest, {"seconds": round(time.perf_counter() - started, 1), "steps": steps}


def _subsample(split: ReplaySplit, known_users: int | None, seed: int) -> ReplaySplit:
    """The split with at most `known_users` known sessions (seeded), for a quicker run."""
    from benchmarks.replay_protocol import select_new_users

    if known_users is None or known_users >= len(split.known):
        return split
    keep = set(select_new_users([s.user_id for s in split.known], known_users, seed))
    return replace(split, known=tuple(s for s in split.known if s.user_id in keep))


def served_config(options: ReplayOptions, run_dir: Path) -> ServeConfig:
    """serve_config.yaml serving the replay tree from the private Redis of `run_dir`."""
    args = {
        "artifacts_dir": str((options.artifacts_dir / REPLAY_TREE).resolve()),
        "variant": options.variant,
        "mode": "eval",
        "run_dir": str(run_dir),
        "storage_uri": "",
    }
    config = ServeConfig.load(options.config_path).with_overrides(args=args)
    return config if options.production_timeouts else quality_timeouts(config)


def quality_timeouts(config: ServeConfig) -> ServeConfig:
    """The config with the Controller's deadlines relaxed to `QUALITY_TIMEOUTS`."""
    timeouts = {**(config.user_config("Controller").get("timeouts") or {}), **QUALITY_TIMEOUTS}
    return config.with_user_config("Controller", timeouts=timeouts)


def run(options: ReplayOptions) -> dict[str, Any]:
    """Splits, builds, serves and replays (see the module doc); returns the report."""
    if os.environ.get("REDIS_URL"):
        raise ReplayError(
            "REDIS_URL is set: the replay serves its tree from a private Redis of its own "
            "(the tree shares the eval tree's namespace, and the replay writes events); unset it"
        )
    from deployments.app import AppArgs
    from deployments.service import manifest_version
    from models.data import load_dataset
    from models.pipeline.load import load_all
    from movierec.redis_server import embedded_redis

    started, load_start, uptime_start = time.perf_counter(), load_average(), uptime()
    dataset = load_dataset(options.variant)
    split = replay_split(
        dataset.ratings,
        test_share=options.test_share,
        min_test=options.min_test,
        new_users=options.new_users,
        seed=options.seed,
    )
    layout, manifest, built = build_tree(split, options, dataset)
    print(f"replay tree {layout.root}: {built}", flush=True)
    split = _subsample(split, options.known_users, options.seed)
    with tempfile.TemporaryDirectory(prefix="mr-replay-") as tmp:
        run_dir = Path(tmp)
        with embedded_redis(run_dir) as redis_url:
            loaded = load_all(layout, manifest, redis_url=redis_url)
            config = served_config(options, run_dir)
            like = float(
                (config.user_config("Events").get("weights") or {}).get("like_threshold", 4.0)
            )
            expected = manifest_version(AppArgs.model_validate(config.args).context())
            with serve_in_process(config) as url:
                result = replay(
                    url, split, options.k, like, options.retries, options.wait_timeout_s
                )
    versions = {a.model_version for arm in result["answers"].values() for a in arm.values()}
    if versions != {expected}:
        raise ReplayError(f"the app served {sorted(versions)}, not the replay tree's {expected}")
    return {
        "benchmark": "replay",
        "created": utc_now(),
        "commit": git_commit(),
        "machine": machine_info(),
        "load_average": {"start": load_start, "end": load_average()},
        "uptime": {"start": uptime_start, "end": uptime()},
        "setup": {
            "variant": options.variant,
            "k": options.k,
            "split": {key: v for key, v in split.settings.items() if key != "new_user_ids"},
            "relevance": "every rating of the second half (the offline protocol's)",
            "excluded": "every movie of the first half, from every arm's list",
            "known_sessions": len(split.known),
            "new_sessions": len(split.new),
            "like_threshold": like,
            "retries": options.retries,
            "timeouts": "production" if options.production_timeouts else QUALITY_TIMEOUTS,
            "model_version": expected,
            "artifacts": str(layout.root.resolve()),
            "build": built,
            "redis_load": loaded,
            "events": result["events"],
            "applied_wait": result["wait"],
            "replay_s": result["seconds"],
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        **score(result, split, options.k, like),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, runs, writes the JSON; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay", description=__doc__)
    parser.add_argument("--variant", default="ml-100k")
    parser.add_argument("--artifacts-dir", type=Path, default=None, help="default: settings'")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--min-test", type=int, default=2)
    parser.add_argument("--new-users", type=int, default=100)
    parser.add_argument("--known-users", type=int, default=None, help="a seeded sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retries", type=int, default=3, help="per degraded answer")
    parser.add_argument("--wait-timeout", type=float, default=300.0, help="seconds")
    parser.add_argument("--production-timeouts", action="store_true")
    parser.add_argument("--config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    add_readme_arguments(parser, "session-replay table")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out_dir / REPLAY_JSON, args.readme or Path("README.md"))
    try:
        from movierec.settings import get_settings

        if args.k < 1 or args.retries < 0 or args.new_users < 0 or args.wait_timeout <= 0:
            raise ReplayError("need --k >= 1, --retries >= 0, --new-users >= 0, --wait-timeout > 0")
        options = ReplayOptions(
            variant=args.variant,
            artifacts_dir=args.artifacts_dir or get_settings().artifacts_dir,
            k=args.k,
            test_share=args.test_share,
            min_test=args.min_test,
            new_users=args.new_users,
            known_users=args.known_users,
            seed=args.seed,
            retries=args.retries,
            wait_timeout_s=args.wait_timeout,
            production_timeouts=args.production_timeouts,
            config_path=args.config,
            out_dir=args.out_dir,
        )
        path = write_json(args.out_dir / REPLAY_JSON, run(options))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except (ReplayError, StackError, OSError, ValueError, RuntimeError) as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(json.loads(path.read_text())))
    print(f"wrote {path}")
    return 0 if args.readme is None else render(path, args.readme)


def render(json_path: Path, readme: Path) -> int:
    """Regenerates the README's session-replay table from `json_path`; returns the status."""
    return render_readme(
        json_path, readme, README_BEGIN, README_END, markdown_table, "session-replay table"
    )


if __name__ == "__main__":
    sys.exit(main())
