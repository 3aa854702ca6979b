"""This project's Ray head on one machine (`make run` / `make stop`): started loopback-only,
recorded, and stopped without touching any other Ray instance.

`ray stop` ends every Ray process on the machine (it finds them by name), other users' and
other projects' included. Instead, `start` records what it started in
`<run dir>/ray/instance.json`: the GCS address, the session directory and the process ids
(with their start times, so a reused pid is never taken for ours), plus the loopback guard
(`movierec.netguard`) when it is applied. `stop` stops exactly those processes and the ones
they started since (workers, replicas, HAProxy), found as their descendants, by the session
directory or the GCS port on their command line, or in the guard's cgroup::

    python -m movierec.ray_instance start [-- extra `ray start` arguments]
    python -m movierec.ray_instance env      # RAY_ADDRESS=... RAY_DASHBOARD_ADDRESS=...
    python -m movierec.ray_instance exec -- COMMAND...   # in the guard's cgroup, with env
    python -m movierec.ray_instance status
    python -m movierec.ray_instance stop

`start` runs `ray start --head` on a free GCS port with `--node-ip-address 127.0.0.1` and
`--dashboard-host 127.0.0.1`, in the environment it was given (`make serve` passes the
Serve mode of `deployments.serve_env`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from movierec import netguard
from movierec.settings import get_settings

logger = logging.getLogger(__name__)

STATE_FILE = "instance.json"
DASHBOARD_PORT = 8265


class InstanceError(RuntimeError):
    """Ray could not be started, or the recorded instance is unusable."""


@dataclass
class Instance:
    """A recorded Ray head.

    Attributes:
        gcs_address: host:port of its GCS.
        session_dir: Its session directory (under Ray's temp dir).
        dashboard_url: Its dashboard (and jobs API).
        processes: [pid, create_time] of each process found right after the start.
        guard: The loopback guard's id, or None when it was not applied.
    """

    gcs_address: str
    session_dir: str
    dashboard_url: str
    processes: list[list[float]] = field(default_factory=list)
    guard: str | None = None

    @property
    def gcs_port(self) -> int:
        """The GCS port."""
        return int(self.gcs_address.rsplit(":", 1)[1])

    def env(self) -> dict[str, str]:
        """What a Ray or Serve client needs to reach this instance, and only it."""
        return {"RAY_ADDRESS": self.gcs_address, "RAY_DASHBOARD_ADDRESS": self.dashboard_url}


def state_path(run_dir: Path) -> Path:
    """The state file of the instance of `run_dir`."""
    return run_dir / "ray" / STATE_FILE


def read_state(run_dir: Path) -> Instance | None:
    """The recorded instance (None when there is none, or the file is unreadable)."""
    try:
        return Instance(**json.loads(state_path(run_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(run_dir: Path, instance: Instance) -> None:
    path = state_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(instance), indent=2))
    tmp.replace(path)


def _free_port(preferred: int = 0) -> int:
    """`preferred` if it is free on 127.0.0.1 (0: any free port)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def belongs(cmdline: Sequence[str], gcs_port: int, session_dir: str | None) -> bool:
    """Whether a command line is one of this instance's Ray processes: it names the session
    directory, or this GCS (its port flag, or an address flag ending in the port)."""
    address = re.compile(rf"^--(gcs[-_]?address|address|gcs_server_port)=(.*:)?{gcs_port}$")
    for arg in cmdline:
        if session_dir and session_dir in arg:
            return True
        if address.match(arg):
            return True
    return False


def find_processes(
    gcs_port: int, session_dir: str | None, extra: Iterable[psutil.Process] = ()
) -> dict[int, psutil.Process]:
    """This user's processes of the instance and all their descendants, by pid."""
    uid = os.geteuid()
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter(["uids", "cmdline"]):
        try:
            if process.info["uids"] is None or process.info["uids"].real != uid:
                continue
        except (psutil.Error, KeyError):
            continue
        if belongs(process.info.get("cmdline") or [], gcs_port, session_dir):
            found[process.pid] = process
    for process in extra:
        found.setdefault(process.pid, process)
    for process in list(found.values()):
        with contextlib.suppress(psutil.Error):
            for child in process.children(recursive=True):
                found.setdefault(child.pid, child)
    found.pop(os.getpid(), None)
    return found


def _recorded(instance: Instance) -> list[psutil.Process]:
    """The recorded processes still alive (same pid AND same start time)."""
    alive = []
    for pid, created in instance.processes:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(int(pid))
            if abs(process.create_time() - created) < 0.01:
                alive.append(process)
    return alive


def running(instance: Instance) -> bool:
    """Whether the instance's GCS is still up (a recorded process listens on its port)."""
    for process in _recorded(instance):
        with contextlib.suppress(psutil.Error):
            for conn in process.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.port == instance.gcs_port:
                    return True
    return False


def _session_dir(gcs_port: int) -> str:
    """The session directory of the GCS listening on `gcs_port` (from its --log_dir)."""
    for process in find_processes(gcs_port, None).values():
        for arg in _cmdline(process):
            if arg.startswith("--log_dir="):
                return str(Path(arg.split("=", 1)[1]).parent)
            if arg.startswith("--session_dir=") or arg.startswith("--session-dir="):
                return arg.split("=", 1)[1]
    raise InstanceError(f"no Ray GCS of this user listens on port {gcs_port}")


def ray_binary(name: str = "ray") -> str:
    """The `ray` (or `serve`) executable next to this Python, else on PATH."""
    sibling = Path(sys.executable).with_name(name)
    return str(sibling) if sibling.exists() else (shutil.which(name) or name)


def _guard_for(run_dir: Path) -> netguard.Guard | None:
    """The guard to apply for `make run` (None: not applied; `auto` warns why)."""
    wanted = netguard.mode()
    if wanted == "off":
        return None
    reason = netguard.unavailable()
    if reason is not None:
        if wanted == "on":
            raise InstanceError(f"MOVIEREC_NETGUARD=on but the loopback guard {reason}")
        netguard.warn_unguarded(reason)
        return None
    return netguard.Guard.for_run_dir(run_dir)


def start(run_dir: Path, extra_args: Sequence[str] = ()) -> Instance:
    """Starts the head (or returns the recorded one if it is still running).

    Raises:
        InstanceError: `ray start` failed, or the guard is required and not possible.
    """
    current = read_state(run_dir)
    if current is not None and running(current):
        return current
    if current is not None:  # a dead instance's leftovers (the machine rebooted, a crash)
        stop(run_dir)
    guard = _guard_for(run_dir)
    if guard is not None:
        try:
            guard.apply()
        except netguard.GuardError as exc:
            if netguard.mode() == "on":
                raise
            netguard.warn_unguarded(str(exc))
            guard = None
    gcs_port = _free_port()
    dashboard_port = _free_port(DASHBOARD_PORT)
    command = [
        ray_binary(),
        "start",
        "--head",
        f"--port={gcs_port}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={_free_port()}",
        "--disable-usage-stats",
        *extra_args,
    ]
    preexec = (lambda: guard.join()) if guard is not None else None
    done = subprocess.run(command, check=False, preexec_fn=preexec)
    if done.returncode != 0:
        ident = guard.ident if guard is not None else None
        leftovers = Instance(f"127.0.0.1:{gcs_port}", "", "", guard=ident)
        _write_state(run_dir, leftovers)
        stop(run_dir)
        raise InstanceError(f"ray start exited with {done.returncode}")
    session_dir = _session_dir(gcs_port)
    processes = find_processes(gcs_port, session_dir)
    instance = Instance(
        gcs_address=f"127.0.0.1:{gcs_port}",
        session_dir=session_dir,
        dashboard_url=f"http://127.0.0.1:{dashboard_port}",
        processes=[[p.pid, p.create_time()] for p in processes.values() if p.is_running()],
        guard=guard.ident if guard is not None else None,
    )
    _write_state(run_dir, instance)
    return instance


def _serve_shutdown(instance: Instance, timeout: float = 60.0) -> None:
    """`serve shutdown` on this instance only (best effort)."""
    env = {**os.environ, **instance.env(), "RAY_AUTH_MODE": "token"}
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [ray_binary("serve"), "shutdown", "-y"],
            env=env,
            check=False,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def terminate(processes: Iterable[psutil.Process], grace_s: float = 15.0) -> list[int]:
    """SIGTERM, then SIGKILL what is left after `grace_s`. Returns the pids signalled."""
    targets = [p for p in processes if p.pid != os.getpid()]
    for process in targets:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(targets, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in targets]


def stop(run_dir: Path, *, serve_shutdown: bool = True, grace_s: float = 5.0) -> list[int]:
    """Stops the recorded instance: Serve first (gracefully: replicas finish their requests),
    then its processes (SIGTERM, SIGKILL after `grace_s`: Ray keeps no state worth a longer
    wait), then the guard. Processes of any other Ray instance are never signalled.

    Returns:
        The pids signalled ([] when no instance is recorded).
    """
    instance = read_state(run_dir)
    if instance is None:
        return []
    if serve_shutdown and running(instance):
        began = time.monotonic()
        _serve_shutdown(instance)
        logger.info("serve shutdown: %.1f s", time.monotonic() - began)
    guard = netguard.Guard.named(instance.guard) if instance.guard else None
    in_cgroup: list[psutil.Process] = []
    if guard is not None:
        for pid in guard.pids():
            with contextlib.suppress(psutil.Error):
                in_cgroup.append(psutil.Process(pid))
    processes = find_processes(
        instance.gcs_port, instance.session_dir or None, [*_recorded(instance), *in_cgroup]
    )
    began = time.monotonic()
    signalled = terminate(processes.values(), grace_s)
    if guard is not None:
        guard.remove(grace_s)
    logger.info("%d processes stopped in %.1f s", len(signalled), time.monotonic() - began)
    state_path(run_dir).unlink(missing_ok=True)
    return signalled


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m movierec.ray_instance")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: MOVIEREC_RUN_DIR")
    commands = parser.add_subparsers(dest="command", required=True)
    begin = commands.add_parser("start", help="start (or find) this project's Ray head")
    begin.add_argument("ray_args", nargs="*", help="more `ray start` arguments (after --)")
    commands.add_parser("stop", help="stop this project's Ray head, and nothing else")
    commands.add_parser("status", help="the recorded instance, exit 1 if it is not running")
    commands.add_parser("env", help="print RAY_ADDRESS=... RAY_DASHBOARD_ADDRESS=...")
    run = commands.add_parser("exec", help="run a command in the guard's cgroup, with env")
    run.add_argument("argv", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_dir: Path = (args.run_dir or get_settings().run_dir).resolve()
    try:
        if args.command == "start":
            instance = start(run_dir, args.ray_args)
            guarded = f"guard {instance.guard}" if instance.guard else "NOT guarded"
            print(f"Ray head at {instance.gcs_address} ({guarded}), {state_path(run_dir)}")
            return 0
        if args.command == "stop":
            began = time.monotonic()
            pids = stop(run_dir)
            took = time.monotonic() - began
            print(
                f"stopped this project's Ray ({len(pids)} processes, {took:.1f} s)"
                if pids
                else "no Ray recorded"
            )
            return 0
        recorded = read_state(run_dir)
        alive = recorded is not None and running(recorded)
        if args.command == "status":
            print(json.dumps({"running": alive, **(asdict(recorded) if recorded else {})}))
            return 0 if alive else 1
        if recorded is None or not alive:
            print(f"error: no running Ray instance recorded in {run_dir}", file=sys.stderr)
            return 1
        if args.command == "env":
            print(" ".join(f"{k}={v}" for k, v in recorded.env().items()))
            return 0
        if recorded.guard:  # exec
            netguard.Guard.named(recorded.guard).join()
        os.execvpe(args.argv[0], args.argv, {**os.environ, **recorded.env()})  # noqa: S606
    except (InstanceError, netguard.GuardError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
