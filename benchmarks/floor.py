"""The in-process compute floor: what one request costs with no HTTP and no hops.

    python -m benchmarks.floor --out floor.json --users-file users.json [--requests 300] \
        [--config serve_config.yaml] [--controller-json '{"candidates": {"max_ranked": 150}}']

Builds the monolith's pipeline (`benchmarks.monolith.start_pipeline`: the deployments' own
classes, same artifacts, Redis and rules) and measures, one request at a time:

* `recommend`: `RecommendService.recommend(user, k=10)` over the stage objects, i.e. the whole
  flow (stage compute, Redis and Feast reads, merge, rules, response model) without HTTP;
* `stage_calls`: every stage call those requests made, recorded with its arguments and then
  replayed ALONE, one after the other (e.g. `features.user`, `ranking.rank`), so each is
  timed without the others overlapping it;
* `cpu`: the same, as this process's CPU time (all threads: the ranker runs in a worker
  thread) instead of wall time, which moves much less when other processes load the machine.

The distance between the served latency and `recommend` is what HTTP, the proxy and the
Serve hops cost; `recommend` minus the stage calls is the flow's own Python work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import percentiles
from deployments.stages import (
    ContentStage,
    FeaturesStage,
    RankingStage,
    RetrievalStage,
    Stages,
)
from movierec.payloads import (
    CandidateFilter,
    RankQuery,
    RetrievalCandidates,
    ScoredMovies,
    UserProfile,
)

Call = tuple[str, Callable[[], Awaitable[Any]]]
"""A recorded stage call: its label ("stage.method") and a closure that repeats it."""


class Recorder:
    """Wraps the four stages so that every call made while `recording` is noted."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.recording = False

    def note(self, label: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Notes one call (when recording)."""
        if self.recording:
            self.calls.append((label, call))

    def wrap(self, stages: Stages) -> Stages:
        """The same stages, each call noted first."""
        return Stages(
            retrieval=_RecordedRetrieval(stages.retrieval, self),
            content=_RecordedContent(stages.content, self),
            features=_RecordedFeatures(stages.features, self),
            ranking=_RecordedRanking(stages.ranking, self),
        )


class _RecordedRetrieval:
    def __init__(self, inner: RetrievalStage, recorder: Recorder) -> None:
        self._inner, self._recorder, self.health = inner, recorder, inner.health

    async def candidates(self, user_id: int, n: int, itemcf_n: int = 0) -> RetrievalCandidates:
        inner = self._inner
        self._recorder.note("retrieval.candidates", lambda: inner.candidates(user_id, n, itemcf_n))
        return await inner.candidates(user_id, n, itemcf_n)


class _RecordedContent:
    def __init__(self, inner: ContentStage, recorder: Recorder) -> None:
        self._inner, self._recorder, self.health = inner, recorder, inner.health
        self.similar = inner.similar

    async def candidates(self, user_id: int, n: int, allowed: CandidateFilter) -> ScoredMovies:
        inner = self._inner
        self._recorder.note("content.candidates", lambda: inner.candidates(user_id, n, allowed))
        return await inner.candidates(user_id, n, allowed)


class _RecordedFeatures:
    def __init__(self, inner: FeaturesStage, recorder: Recorder) -> None:
        self._inner, self._recorder, self.health = inner, recorder, inner.health

    async def user(self, user_id: int) -> UserProfile | None:
        self._recorder.note("features.user", lambda: self._inner.user(user_id))
        return await self._inner.user(user_id)


class _RecordedRanking:
    def __init__(self, inner: RankingStage, recorder: Recorder) -> None:
        self._inner, self._recorder, self.health = inner, recorder, inner.health

    async def rank(self, query: RankQuery) -> np.ndarray:
        self._recorder.note("ranking.rank", lambda: self._inner.rank(query))
        return await self._inner.rank(query)


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` applied, nested dicts merged key by key."""
    out = dict(base)
    for key, value in changes.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            out[key] = merged(old, value)
        else:
            out[key] = value
    return out


async def measure(
    config_path: Path,
    args_json: dict[str, Any],
    user_ids: Sequence[int],
    warmup: int,
    k: int,
    controller_json: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs the measurement (see the module doc) on the running event loop.

    `controller_json` changes the Controller's `user_config` (e.g. the candidate counts).
    """
    from benchmarks.monolith import start_pipeline
    from deployments.config import ControllerConfig
    from deployments.request import RecommendRequest

    recorder = Recorder()
    pipeline = await start_pipeline(config_path, args_json, wrap=recorder.wrap, with_metrics=True)
    if controller_json:
        current = pipeline.service.config.model_dump()
        changed = ControllerConfig.model_validate(merged(current, controller_json))
        pipeline.service.configure(changed)
    for user_id in list(user_ids)[:warmup]:
        await pipeline.service.recommend(RecommendRequest(user_id, k))
    recorder.recording = True
    latencies, cpu = [], []
    for user_id in user_ids:
        started, started_cpu = time.perf_counter(), time.process_time()
        await pipeline.service.recommend(RecommendRequest(user_id, k))
        latencies.append(1000.0 * (time.perf_counter() - started))
        cpu.append(1000.0 * (time.process_time() - started_cpu))
    recorder.recording = False

    alone: dict[str, list[float]] = defaultdict(list)
    alone_cpu: dict[str, list[float]] = defaultdict(list)
    for label, call in recorder.calls:
        started, started_cpu = time.perf_counter(), time.process_time()
        await call()
        alone[label].append(1000.0 * (time.perf_counter() - started))
        alone_cpu[label].append(1000.0 * (time.process_time() - started_cpu))
    return {
        "requests": len(latencies),
        "k": k,
        "controller": controller_json or {},
        "recommend": percentiles(latencies),
        "stage_calls": {name: percentiles(values) for name, values in sorted(alone.items())},
        "cpu": {
            "what": "CPU time of this process (all its threads) per call, ms",
            "recommend": percentiles(cpu),
            "stage_calls": {name: percentiles(v) for name, v in sorted(alone_cpu.items())},
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, measures, writes the JSON; returns the exit status."""
    from benchmarks.monolith import _event_loop_runner
    from benchmarks.stack import SERVE_CONFIG, StackError

    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--args-json", default="{}", help="overrides of the app's args")
    parser.add_argument(
        "--controller-json", default="{}", help="changes to the Controller's user_config"
    )
    parser.add_argument("--users-file", type=Path, required=True, help="JSON list of user ids")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.args_json)
        controller = json.loads(args.controller_json)
        if not isinstance(overrides, dict) or not isinstance(controller, dict):
            raise ValueError("--args-json and --controller-json must be JSON objects")
        if args.requests < 1 or args.warmup < 0 or args.k < 1:
            raise ValueError("need --requests >= 1, --warmup >= 0, --k >= 1")
        users = [int(u) for u in json.loads(args.users_file.read_text())]
        if not users:
            raise ValueError(f"{args.users_file} lists no users")
        chosen = [users[i % len(users)] for i in range(args.requests)]
        with _event_loop_runner() as runner:
            result = runner.run(
                measure(args.config, overrides, chosen, args.warmup, args.k, controller)
            )
    except (StackError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
