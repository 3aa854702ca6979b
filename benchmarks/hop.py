"""The price of composition itself: one DeploymentHandle call, and one HTTP request into a
Serve ingress replica, each with no work behind it.

    python -m benchmarks.hop --calls 2000 --requests 2000 --out benchmarks/results/hop.json

A private Ray instance in movierec's Serve mode (`deployments.serve_env`: gRPC handles,
HAProxy ingress) runs a two-deployment app: `HopIngress` (FastAPI, like the Controller) and
`Echo` (a stage that computes nothing). Measured one call at a time, on an otherwise idle app:

* `handle_calls`: the ingress replica makes N sequential `await handle.<method>.remote(...)`
  calls in a loop (one HTTP request starts the loop); the CPU seconds the caller and the
  callee processes used meanwhile, minus what each uses idle over the same time, divided
  by N. Methods with the app's own payloads: `noop` (an int in, None out), `retrieval` (an
  int in, a `RetrievalCandidates` of 200 + 100 movies out, as the Retrieval stage answers)
  and `rank` (a `RankQuery` of 350 candidates in, 350 float32 scores out, as the Ranking
  stage is called);
* `flow`: the Controller's call graph with these payloads: three `retrieval` calls at once to
  three stage deployments, then a `rank` call to a fourth, N times in sequence; CPU per flow
  of the caller and of the four callees, and the flow's latency;
* `http`: N sequential `GET /noop` over one keep-alive connection, through HAProxy to the
  ingress replica, against the same FastAPI app in one uvicorn process (the monolith's
  front): CPU per request of the server processes (HAProxy included), idle subtracted, and
  the client's latency.

The Controller makes four stage calls per request (three at once, then ranking) and serves
HTTP, so `4 x handle call + (HTTP in Serve - HTTP in uvicorn)` is the least CPU the
composition can add to the pipeline in this Serve mode, whatever the stages compute; the
`flow` measures the same graph as the app runs it (the three calls overlapping).

Output (JSON): {"benchmark", "created", "commit", "machine", "load_average", "setup" (with
the handle's "handle_transport", "gRPC" in this Serve mode, and the `--env` given),
"handle_calls": {method: {"calls", "caller_cpu_ms", "callee_cpu_ms", "cpu_ms", "p50_ms",
"p99_ms"}}, "flow": {"flows", "caller_cpu_ms", "callees_cpu_ms", "cpu_ms", "p50_ms",
"p99_ms"}, "serialization": {method: {"bytes", "dumps_us", "loads_us"}} (the argument of
`noop` and `rank`, the result of `retrieval`), "http": {"serve" | "uvicorn": {"requests",
"cpu_ms", "cpu_ms_by_process", "p50_ms", "p99_ms"}}, "composition":
{"stage_calls_per_request", "cpu_ms", "p50_ms", "flow_cpu_ms", "flow_p50_ms"}}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    git_commit,
    load_average,
    machine_info,
    percentiles,
    utc_now,
    write_json,
)
from benchmarks.hop_report import render
from benchmarks.stack import (
    StackError,
    add_readme_arguments,
    deploy_raw,
    free_port,
    private_ray,
)
from movierec.payloads import RankQuery, RetrievalCandidates, ScoredMovies
from movierec.processes import stop_child

APP = "hop"
HOP_JSON = "hop.json"
METHODS: tuple[str, ...] = ("noop", "retrieval", "rank")
STAGE_NAMES: tuple[str, ...] = ("Echo", "EchoContent", "EchoFeatures", "EchoRanking")
"""The stage deployments: `Echo` also answers the single calls."""
STAGE_CALLS_PER_REQUEST = 4
"""The Controller's stage calls per personalized answer: retrieval, content, features, then
ranking (`deployments.service`)."""
RANKED = 350
RANK_COLUMNS = 13
"""`merged_score` plus score, rank and membership of four sources (`RankQuery.candidates`)."""


def retrieval_payload(n: int = 200, itemcf_n: int = 100) -> RetrievalCandidates:
    """What the Retrieval stage answers: [n] and [itemcf_n] ids and scores."""
    rng = np.random.default_rng(0)
    return RetrievalCandidates(
        ScoredMovies.of(rng.permutation(1682)[:n], rng.random(n)),
        ScoredMovies.of(rng.permutation(1682)[:itemcf_n], rng.random(itemcf_n)),
    )


def rank_payload(n: int = RANKED) -> RankQuery:
    """What the Controller sends the Ranking stage: [n] ids, RANK_COLUMNS [n] float64 columns
    and a dozen user features."""
    rng = np.random.default_rng(1)
    return RankQuery(
        user_id=1,
        user={f"user_feature_{i}": float(i) for i in range(12)},
        movie_ids=rng.permutation(1682)[:n].astype(np.int64),
        candidates={f"column_{i}": rng.random(n) for i in range(RANK_COLUMNS)},
    )


def serialization_costs(repeat: int = 2000) -> dict[str, dict[str, float]]:
    """Per payload: its size and the CPU microseconds of one cloudpickle dumps and loads (what
    Serve's gRPC handles do to arguments and results by default), in this process."""
    from ray import cloudpickle

    payloads = {"noop": 1, "retrieval": retrieval_payload(), "rank": rank_payload()}
    out = {}
    for name, payload in payloads.items():
        start = time.process_time()
        for _ in range(repeat):
            data = cloudpickle.dumps(payload)
        dumped = time.process_time()
        for _ in range(repeat):
            cloudpickle.loads(data)
        loaded = time.process_time()
        out[name] = {
            "bytes": len(data),
            "dumps_us": 1e6 * (dumped - start) / repeat,
            "loads_us": 1e6 * (loaded - dumped) / repeat,
        }
    return out


def build_app(args: Mapping[str, Any] | None = None) -> Any:
    """The two-deployment app (the Serve application builder of `hop_config`).

    Built inside the cluster, like the real app (`import_path`), so that the handle between
    the two follows the cluster's Serve mode (a handle built in this process would keep the
    mode this process imported Ray Serve under)."""
    from fastapi import FastAPI, HTTPException
    from ray import serve
    from ray.serve.handle import DeploymentHandle

    @serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
    class Echo:
        """A stage that computes nothing: answers precomputed payloads."""

        def __init__(self) -> None:
            self._retrieval = retrieval_payload()

        async def noop(self, user_id: int) -> None:
            return None

        async def retrieval(self, user_id: int) -> RetrievalCandidates:
            return self._retrieval

        async def rank(self, query: RankQuery) -> np.ndarray:
            return np.zeros(len(query), np.float32)

        async def pid(self) -> int:
            return os.getpid()

    api = FastAPI()

    @serve.deployment(ray_actor_options={"num_cpus": 0.1}, max_ongoing_requests=64)
    @serve.ingress(api)
    class HopIngress:
        """The caller: HTTP in, a loop of handle calls on request."""

        def __init__(self, *stages: DeploymentHandle) -> None:
            self._echo = stages[0]
            self._stages = stages
            self._query = rank_payload()

        @api.get("/noop")
        async def noop(self) -> dict[str, bool]:
            return {"ok": True}

        @api.get("/pids")
        async def pids(self) -> dict[str, Any]:
            by_reference = getattr(self._echo.handle_options, "_by_reference", None)
            transport = (
                "unknown" if by_reference is None else "actor task" if by_reference else "gRPC"
            )
            return {
                "ingress": os.getpid(),
                "echo": await self._echo.pid.remote(),
                "stages": [await stage.pid.remote() for stage in self._stages],
                "transport": transport,
            }

        @api.get("/flows")
        async def flows(self, n: int, gap_ms: float = 0.0) -> dict[str, list[float]]:
            """The Controller's call graph: three list calls at once, then the rank call."""
            if not 1 <= n <= 1_000_000 or not 0 <= gap_ms <= 1000:
                raise HTTPException(422, "n must be in [1, 1e6], gap_ms in [0, 1000]")
            *sources, ranker = self._stages
            query = self._query
            latencies = []
            for i in range(n):
                if gap_ms:
                    await asyncio.sleep(gap_ms / 1000.0)
                start = time.perf_counter()
                await asyncio.gather(*(stage.retrieval.remote(i) for stage in sources))
                await ranker.rank.remote(query)
                latencies.append(1000.0 * (time.perf_counter() - start))
            return {"latencies_ms": latencies}

        @api.get("/calls")
        async def calls(self, method: str, n: int, gap_ms: float = 0.0) -> dict[str, list[float]]:
            if method not in METHODS or not 1 <= n <= 1_000_000 or not 0 <= gap_ms <= 1000:
                raise HTTPException(
                    422, f"method must be one of {METHODS}, n in [1, 1e6], gap_ms in [0, 1000]"
                )
            echo, query = self._echo, self._query
            latencies = []
            for i in range(n):
                if gap_ms:
                    await asyncio.sleep(gap_ms / 1000.0)
                start = time.perf_counter()
                if method == "noop":
                    await echo.noop.remote(i)
                elif method == "retrieval":
                    await echo.retrieval.remote(i)
                else:
                    await echo.rank.remote(query)
                latencies.append(1000.0 * (time.perf_counter() - start))
            return {"latencies_ms": latencies}

    ingress: Any = HopIngress  # a Serve Deployment at runtime (type checkers see the class)
    echo: Any = Echo
    # One deployment per stage, as in the app: Echo answers `calls`, all four `flows`.
    stages = [echo.options(name=name).bind() for name in STAGE_NAMES]
    return ingress.bind(*stages)


def plain_app() -> Any:
    """The same `GET /noop` in a plain FastAPI app (for `uvicorn --factory`)."""
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/noop")
    async def noop() -> dict[str, bool]:
        return {"ok": True}

    return api


def cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (0 for one that is gone)."""
    import psutil

    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            out[pid] = times.user + times.system
        except psutil.Error:
            out[pid] = 0.0
    return out


def haproxy_pids() -> list[int]:
    """HAProxy processes under this process (the private Ray instance's ingress)."""
    import psutil

    return [
        p.pid for p in psutil.Process().children(recursive=True) if p.name().startswith("haproxy")
    ]


class Meter:
    """CPU seconds of named processes over a window, minus their idle rate over that window."""

    def __init__(self, pids: Mapping[str, Sequence[int]], idle_s: float) -> None:
        self.pids = {name: list(ids) for name, ids in pids.items()}
        self.idle_rate = {name: 0.0 for name in self.pids}
        if idle_s > 0:
            before = self._read()
            time.sleep(idle_s)
            after = self._read()
            self.idle_rate = {n: (after[n] - before[n]) / idle_s for n in self.pids}

    def _read(self) -> dict[str, float]:
        return {name: sum(cpu_seconds(ids).values()) for name, ids in self.pids.items()}

    @contextlib.contextmanager
    def window(self, out: dict[str, float]) -> Iterator[None]:
        """Fills `out` with each name's CPU seconds over the block, net of idle."""
        before, start = self._read(), time.monotonic()
        yield
        after, elapsed = self._read(), time.monotonic() - start
        for name in self.pids:
            out[name] = max(after[name] - before[name] - self.idle_rate[name] * elapsed, 0.0)


class Client:
    """Sequential GETs over one keep-alive connection (loopback)."""

    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self._conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str) -> bytes:
        self._conn.request("GET", path)
        response = self._conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise StackError(f"GET {path}: HTTP {response.status} {body[:300]!r}")
        return body

    def close(self) -> None:
        self._conn.close()


def wait_answering(port: int, timeout: float = 300.0) -> None:
    """Until `GET /noop` answers 200 on the port."""
    deadline = time.monotonic() + timeout
    while True:
        client = Client(port, timeout=5.0)
        try:
            client.get("/noop")
            return
        except (OSError, http.client.HTTPException, StackError):
            if time.monotonic() > deadline:
                raise StackError(f"nothing answers GET /noop on port {port}") from None
            time.sleep(0.5)
        finally:
            client.close()


def measure_http(
    port: int, pids: Mapping[str, Sequence[int]], requests: int, warmup: int, idle_s: float
) -> dict[str, Any]:
    """`requests` sequential `GET /noop`: server CPU per request (idle subtracted), latency."""
    meter = Meter(pids, idle_s)  # first: an idle keep-alive connection would be closed
    client = Client(port)
    try:
        for _ in range(warmup):
            client.get("/noop")
        used: dict[str, float] = {}
        latencies = []
        with meter.window(used):
            for _ in range(requests):
                start = time.perf_counter()
                client.get("/noop")
                latencies.append(1000.0 * (time.perf_counter() - start))
    finally:
        client.close()
    stats = percentiles(latencies, (50, 99))
    return {
        "requests": requests,
        "cpu_ms": 1000.0 * sum(used.values()) / requests,
        "cpu_ms_by_process": {name: 1000.0 * s / requests for name, s in used.items()},
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
    }


def measured_loop(
    port: int, pids: Mapping[str, Sequence[int]], path: str, n: int, warmup: int, idle_s: float
) -> tuple[dict[str, float], dict[str, float]]:
    """One ingress loop of `n` iterations (`GET {path}&n=...`, after an untimed one of
    `warmup`): CPU ms per iteration of each named process group, idle subtracted, and the
    loop's latency percentiles."""
    meter = Meter(pids, idle_s)  # first: an idle keep-alive connection would be closed
    client = Client(port)
    try:
        client.get(f"{path}&n={max(warmup, 1)}")
        used: dict[str, float] = {}
        with meter.window(used):
            body = client.get(f"{path}&n={n}")
    finally:
        client.close()
    cpu_ms = {name: 1000.0 * seconds / n for name, seconds in used.items()}
    return cpu_ms, percentiles(json.loads(body)["latencies_ms"], (50, 99))


def measure_calls(
    port: int,
    pids: Mapping[str, Sequence[int]],
    calls: int,
    warmup: int,
    idle_s: float,
    gap_ms: float = 0.0,
) -> dict[str, dict[str, Any]]:
    """Per method: `calls` sequential handle calls from the ingress replica ("caller") to Echo
    ("callee"), `gap_ms` apart (0: back to back)."""
    out = {}
    for method in METHODS:
        cpu, stats = measured_loop(
            port, pids, f"/calls?method={method}&gap_ms={gap_ms}", calls, warmup, idle_s
        )
        out[method] = {
            "calls": calls,
            "caller_cpu_ms": cpu["caller"],
            "callee_cpu_ms": cpu["callee"],
            "cpu_ms": cpu["caller"] + cpu["callee"],
            "p50_ms": stats["p50_ms"],
            "p99_ms": stats["p99_ms"],
        }
    return out


def measure_flows(
    port: int,
    pids: Mapping[str, Sequence[int]],
    flows: int,
    warmup: int,
    idle_s: float,
    gap_ms: float = 0.0,
) -> dict[str, Any]:
    """`flows` sequential runs of the Controller's call graph (three list calls at once to
    three stage deployments, then the rank call to a fourth): CPU per flow of the caller and
    of all callees, idle subtracted, and the flow's latency."""
    cpu, stats = measured_loop(port, pids, f"/flows?gap_ms={gap_ms}", flows, warmup, idle_s)
    return {
        "flows": flows,
        "caller_cpu_ms": cpu["caller"],
        "callees_cpu_ms": cpu["callees"],
        "cpu_ms": cpu["caller"] + cpu["callees"],
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
    }


@contextlib.contextmanager
def uvicorn_process(port: int) -> Iterator[int]:
    """`plain_app` in one uvicorn process on 127.0.0.1 (stopped after); yields its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "benchmarks.hop:plain_app",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--no-access-log"],
    )  # fmt: skip
    try:
        wait_answering(port, timeout=60.0)
        yield proc.pid
    finally:
        stop_child(proc, grace_s=10)


def hop_config(port: int) -> dict[str, Any]:
    """The Serve config deploying `build_app` on 127.0.0.1:`port`."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [
            {"name": APP, "route_prefix": "/", "import_path": "benchmarks.hop:build_app"}
        ],
    }


def run(
    calls: int,
    requests: int,
    warmup: int,
    idle_s: float,
    env: Mapping[str, str] | None = None,
    gap_ms: float = 0.0,
) -> dict[str, Any]:
    """Deploys the hop app on a private Ray instance (its processes get `env` on top of the
    Serve mode) and measures both; the JSON payload."""

    started = load_average()
    port = free_port()
    with private_ray(env=env):
        deploy_raw(hop_config(port), app=APP)
        wait_answering(port)
        client = Client(port)
        try:
            pids = json.loads(client.get("/pids"))
        finally:
            client.close()
        transport = pids["transport"]
        handle_calls = measure_calls(
            port,
            {"caller": [pids["ingress"]], "callee": [pids["echo"]]},
            calls,
            warmup,
            idle_s,
            gap_ms,
        )
        flow = measure_flows(
            port,
            {"caller": [pids["ingress"]], "callees": pids["stages"]},
            calls,
            warmup,
            idle_s,
            gap_ms,
        )
        serve_http = measure_http(
            port, {"ingress replica": [pids["ingress"]], "haproxy": haproxy_pids()},
            requests, warmup, idle_s,
        )  # fmt: skip
    plain_port = free_port()
    with uvicorn_process(plain_port) as pid:
        plain_http = measure_http(plain_port, {"uvicorn": [pid]}, requests, warmup, idle_s)
    call_cpu = {m: v["cpu_ms"] for m, v in handle_calls.items()}
    # The app's four calls: retrieval, content and features answer lists (the retrieval
    # payload stands for each), ranking takes the candidates.
    calls_cpu = 3 * call_cpu["retrieval"] + call_cpu["rank"]
    calls_p50 = handle_calls["retrieval"]["p50_ms"] + handle_calls["rank"]["p50_ms"]
    return {
        "benchmark": "hop",
        "created": utc_now(),
        "commit": git_commit(),
        "machine": machine_info(),
        "load_average": {"start": started, "end": load_average()},
        "setup": {
            "calls": calls,
            "requests": requests,
            "warmup": warmup,
            "idle_s": idle_s,
            "handle_transport": transport,
            "env": dict(env or {}),
            "gap_ms": gap_ms,
        },
        "handle_calls": handle_calls,
        "flow": flow,
        "serialization": serialization_costs(),
        "http": {"serve": serve_http, "uvicorn": plain_http},
        "composition": {
            "stage_calls_per_request": STAGE_CALLS_PER_REQUEST,
            "cpu_ms": calls_cpu + serve_http["cpu_ms"] - plain_http["cpu_ms"],
            "p50_ms": calls_p50 + serve_http["p50_ms"] - plain_http["p50_ms"],
            "flow_cpu_ms": flow["cpu_ms"] + serve_http["cpu_ms"] - plain_http["cpu_ms"],
            "flow_p50_ms": flow["p50_ms"] + serve_http["p50_ms"] - plain_http["p50_ms"],
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="handle calls per method")
    parser.add_argument("--requests", type=int, default=2000, help="HTTP requests per system")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls/requests first")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for Ray's processes (a Serve knob to compare); repeatable",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results") / HOP_JSON)
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="pause between handle calls (0: back to back; e.g. 30 lets both sides go idle)",
    )
    add_readme_arguments(parser, "hop table")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out, args.readme or Path("README.md"))
    if min(args.calls, args.requests) < 1 or min(args.warmup, args.idle, args.gap_ms) < 0:
        parser.error("--calls and --requests must be >= 1, --warmup, --idle, --gap-ms >= 0")
    if args.gap_ms > 1000:
        parser.error("--gap-ms must be <= 1000")
    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not name or not sep:
            parser.error(f"--env takes NAME=VALUE, not {item!r}")
        env[name] = value
    try:
        payload = run(args.calls, args.requests, args.warmup, args.idle, env, args.gap_ms)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    write_json(args.out, payload)
    for method, v in payload["handle_calls"].items():
        print(f"handle call {method:9s} caller {v['caller_cpu_ms']:.2f} + callee "
              f"{v['callee_cpu_ms']:.2f} ms CPU, p50 {v['p50_ms']:.2f} ms")  # fmt: skip
    for system, v in payload["http"].items():
        print(f"http {system:8s} {v['cpu_ms']:.2f} ms CPU/request, p50 {v['p50_ms']:.2f} ms")
    c = payload["composition"]
    print(f"composition floor: {c['cpu_ms']:.2f} ms CPU, {c['p50_ms']:.2f} ms p50 per request")
    print(f"wrote {args.out}")
    return 0 if args.readme is None else render(args.out, args.readme)


if __name__ == "__main__":
    raise SystemExit(main())
