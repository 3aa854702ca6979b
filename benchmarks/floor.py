"""The in-process compute floor: what one request costs with no HTTP and no hops.

    python -m benchmarks.floor --out floor.json [--requests 300] [--config serve_config.yaml]

Builds the monolith's pipeline (`benchmarks.monolith.start_pipeline`: the deployments' own
classes, same artifacts, Redis and rules) and measures, one request at a time:

* `recommend`: `RecommendService.recommend(user, k=10)` over `LocalClient`s, i.e. the whole
  flow (stage compute, Redis and Feast reads, merge, rules, response model) without HTTP;
* `stage_calls`: every stage call those requests made, recorded with its arguments and then
  replayed ALONE, one after the other (e.g. `features.user`, `ranking.rank`), so each is
  timed without the others overlapping it.

The distance between the served latency and `recommend` is what HTTP, the proxy and the
Serve hops cost; `recommend` minus the stage calls is the flow's own Python work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import percentiles


class RecordingClient:
    """A `LocalClient` that remembers each call (method and arguments) while recording."""

    def __init__(self, stage: object, name: str, calls: list[tuple[str, str, tuple[Any, ...]]]):
        from deployments.stage_client import LocalClient

        self._inner = LocalClient(stage)
        self._name = name
        self._calls = calls
        self.recording = False

    async def call(self, method: str, *args: Any) -> Any:
        """Runs the call (see `LocalClient.call`), noting it first when recording."""
        if self.recording:
            self._calls.append((self._name, method, args))
        return await self._inner.call(method, *args)


async def measure(
    config_path: Path, args_json: dict[str, Any], user_ids: Sequence[int], warmup: int, k: int
) -> dict[str, Any]:
    """Runs the measurement (see the module doc) on the running event loop."""
    from benchmarks.monolith import start_pipeline
    from deployments.stage_client import LocalClient

    calls: list[tuple[str, str, tuple[Any, ...]]] = []
    clients: list[RecordingClient] = []

    def wrap(stage: object, name: str) -> RecordingClient:
        clients.append(RecordingClient(stage, name, calls))
        return clients[-1]

    pipeline = await start_pipeline(config_path, args_json, wrap=wrap, with_metrics=True)
    for user_id in list(user_ids)[:warmup]:
        await pipeline.service.recommend(user_id, k, [], set(), None)
    for client in clients:
        client.recording = True
    latencies = []
    for user_id in user_ids:
        started = time.perf_counter()
        await pipeline.service.recommend(user_id, k, [], set(), None)
        latencies.append(1000.0 * (time.perf_counter() - started))
    for client in clients:
        client.recording = False

    objects = {
        "retrieval": pipeline.stages.retrieval,
        "features": pipeline.stages.features,
        "content": pipeline.stages.content,
        "ranking": pipeline.stages.ranking,
    }
    alone: dict[str, list[float]] = defaultdict(list)
    for stage, method, args in calls:
        local = LocalClient(objects[stage])
        started = time.perf_counter()
        await local.call(method, *args)
        alone[f"{stage}.{method}"].append(1000.0 * (time.perf_counter() - started))
    return {
        "requests": len(latencies),
        "k": k,
        "recommend": percentiles(latencies),
        "stage_calls": {name: percentiles(values) for name, values in sorted(alone.items())},
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, measures, writes the JSON; returns the exit status."""
    from benchmarks.monolith import _event_loop_runner
    from benchmarks.stack import SERVE_CONFIG, StackError

    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__)
    parser.add_argument("--config", type=Path, default=SERVE_CONFIG)
    parser.add_argument("--args-json", default="{}", help="overrides of the app's args")
    parser.add_argument("--users-file", type=Path, required=True, help="JSON list of user ids")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        overrides = json.loads(args.args_json)
        if not isinstance(overrides, dict):
            raise ValueError("--args-json must be a JSON object")
        if args.requests < 1 or args.warmup < 0 or args.k < 1:
            raise ValueError("need --requests >= 1, --warmup >= 0, --k >= 1")
        users = [int(u) for u in json.loads(args.users_file.read_text())]
        if not users:
            raise ValueError(f"{args.users_file} lists no users")
        chosen = [users[i % len(users)] for i in range(args.requests)]
        with _event_loop_runner() as runner:
            result = runner.run(measure(args.config, overrides, chosen, args.warmup, args.k))
    except (StackError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
