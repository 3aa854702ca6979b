"""The app started the way `make run` starts it (`movierec.ray_instance start`, then
`serve run` through `ray_instance exec`, Serve's HAProxy mode), on tiny real artifacts and the
embedded Redis, without the ingress drain period (`benchmarks.stack.serve_mode_env`):

* every listening socket of every process of the app is on loopback, or (what Ray and HAProxy
  bind to every interface and cannot be told otherwise) unreachable from the machine's
  non-loopback addresses, while it answers on 127.0.0.1;
* `ray_instance stop` (what `make stop` runs) stops this instance and leaves another Ray
  instance of the same user running.

Needs root for the loopback guard (nftables, cgroups: `movierec.netguard`); skipped with the
reason otherwise. Each figure (sockets by kind, pids stopped) is printed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
import yaml

from benchmarks.stack import INGRESS_DRAIN_ENV, free_port, wait_healthy
from deployments.serve_env import haproxy_dir, haproxy_paths, haproxy_ports, serve_env
from movierec import netguard, ray_instance
from movierec.redis_server import embedded_redis, read_state
from tests.deployments._artifacts import build_tiny_artifacts
from tests.deployments._serve import RELAXED_TIMEOUTS, with_user_config
from tests.movierec._remote import host_addresses, listener_report, remote_host

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Started:
    """The app as `make run` leaves it."""

    run_dir: Path
    url: str
    instance: ray_instance.Instance
    redis_pid: int
    haproxy_dir: Path
    stats_port: int


def _run(args: list[str], env: dict[str, str], timeout: float = 600) -> None:
    done = subprocess.run(
        args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    reason = netguard.unavailable()
    if reason is not None:
        pytest.skip(f"the loopback guard cannot be applied here: {reason}")
    run_dir = tmp_path_factory.mktemp("make-run")
    with embedded_redis(run_dir) as redis_url:
        artifacts = build_tiny_artifacts(tmp_path_factory.mktemp("art") / "artifacts", redis_url)
        raw = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
        port = free_port()
        raw["http_options"]["port"] = port
        raw["applications"][0]["args"].update(
            artifacts_dir=str(artifacts.artifacts_dir),
            variant=artifacts.layout.variant,
            mode=artifacts.layout.mode,
            run_dir=str(run_dir),
        )
        raw = with_user_config(raw, "Controller", timeouts=RELAXED_TIMEOUTS)
        config = run_dir / "serve_config.yaml"
        config.write_text(yaml.safe_dump(raw))

        # What `make serve` gives `ray start` (env $(python -m deployments.serve_env)), with
        # HAProxy's ports free (8404/9101 may be taken on a shared machine).
        stats_port = free_port()
        private = haproxy_dir(run_dir)
        env = {
            **os.environ,
            **serve_env(),
            **haproxy_ports(stats_port, free_port()),
            **haproxy_paths(private),
            # Nothing balances to this instance: `stop` need not wait Ray's 30 s ingress drain.
            INGRESS_DRAIN_ENV: "0",
            "RAY_AUTH_MODE": "token",
            "MOVIEREC_RUN_DIR": str(run_dir),
            "MOVIEREC_NETGUARD": "on",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        cli = [sys.executable, "-m", "movierec.ray_instance", "--run-dir", str(run_dir)]
        try:
            _run([*cli, "start", "--", "--num-cpus=2"], env, timeout=180)
            serve_bin = ray_instance.ray_binary("serve")
            _run([*cli, "exec", "--", serve_bin, "run", "--non-blocking", str(config)], env)
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url, timeout=600)
            instance = ray_instance.read_state(run_dir)
            redis = read_state(run_dir)
            assert instance is not None and redis is not None
            yield Started(run_dir, url, instance, redis.pid, private, stats_port)
        finally:
            ray_instance.stop(run_dir)
            shutil.rmtree(private, ignore_errors=True)


def _app_processes(app: Started) -> dict[int, psutil.Process]:
    processes = ray_instance.find_processes(app.instance.gcs_port, app.instance.session_dir)
    processes[app.redis_pid] = psutil.Process(app.redis_pid)
    return processes


def test_every_socket_of_the_app_is_loopback_or_unreachable_from_the_network(
    started: Started,
) -> None:
    assert httpx.get(f"{started.url}/healthz", timeout=10).status_code == 200
    guard = netguard.Guard.named(started.instance.guard or "")
    assert started.instance.guard and guard.active()
    processes = _app_processes(started)
    names = {p.name() for p in processes.values() if p.is_running()}
    assert {"gcs_server", "raylet", "haproxy"} <= names, names
    report = listener_report(processes.values(), set(guard.pids()))
    report.print("listeners, make run")
    assert report.hosts, "this machine has no non-loopback address to test from"
    assert report.probe_works, "the probe host cannot reach this machine at all"
    assert not report.exposed, report.exposed
    assert report.beyond and report.probed, "expected Ray's hard-coded binds: none seen?"


def test_haproxy_answers_on_loopback_only_and_its_admin_socket_is_private(
    started: Started,
) -> None:
    stats = f"127.0.0.1:{started.stats_port}"
    assert httpx.get(f"http://{stats}/stats", timeout=10).status_code == 200
    hosts = [h for h in host_addresses() if ":" not in h]
    with remote_host() as probe:
        assert probe([(h, started.stats_port) for h in hosts]) == [False] * len(hosts)
    assert list(started.haproxy_dir.glob("*/admin.sock")), f"no socket in {started.haproxy_dir}"
    assert stat.S_IMODE(started.haproxy_dir.stat().st_mode) == 0o700
    haproxies = [p for p in _app_processes(started).values() if p.name() == "haproxy"]
    assert haproxies
    for process in haproxies:  # its config (and so its sockets) in the private directory
        assert any(str(started.haproxy_dir) in arg for arg in process.cmdline())


@contextlib.contextmanager
def _other_ray_instance() -> Iterator[dict[int, psutil.Process]]:
    """An unrelated Ray head of the same user (its own ports and temp dir), stopped by pid."""
    temp_dir = Path(tempfile.mkdtemp(prefix="mr-other-"))
    port = free_port()
    command = [
        ray_instance.ray_binary(),
        "start",
        "--head",
        f"--port={port}",
        f"--temp-dir={temp_dir}",
        "--num-cpus=0",
        "--include-dashboard=false",
        f"--ray-client-server-port={free_port()}",
        "--disable-usage-stats",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "MOVIEREC_NETGUARD": "off"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    processes = ray_instance.find_processes(port, str(temp_dir))
    try:
        assert done.returncode == 0, done.stderr[-3000:]
        yield processes
    finally:
        ray_instance.terminate(processes.values())
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_stop_stops_this_instance_and_leaves_another_running(started: Started) -> None:
    ours = _app_processes(started)
    ours.pop(started.redis_pid)  # Redis has its own stop (`make stop` runs both)
    guard = netguard.Guard.named(started.instance.guard or "")
    with _other_ray_instance() as other:
        assert other and not set(other) & set(ours)
        started_at = time.perf_counter()
        cli = [sys.executable, "-m", "movierec.ray_instance", "--run-dir", str(started.run_dir)]
        done = subprocess.run(  # what `make stop` runs
            [*cli, "stop"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        took = time.perf_counter() - started_at
        phases = "; ".join(done.stderr.strip().splitlines()[-2:])
        print(f"\n[stop] {done.stdout.strip()} (wall {took:.1f} s; {phases})")
        assert done.returncode == 0, done.stderr
        assert all(p.is_running() for p in other.values()), "another Ray instance was stopped"
        assert not [p for p in ours.values() if p.is_running()], "a process of ours survived"
        assert ray_instance.read_state(started.run_dir) is None
        assert not guard.active() and not guard.cgroup.exists()
        assert psutil.pid_exists(started.redis_pid)
