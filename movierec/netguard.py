"""Loopback only: a host firewall rule set that makes one Ray instance unreachable from the
network, whatever addresses its processes bind.

Ray 2.60 cannot be told to listen on loopback only. With `--node-ip-address 127.0.0.1` its
GCS, raylet and every worker's gRPC server still bind `::` (all interfaces), the metrics
agent `0.0.0.0`, the runtime-env agent and the Ray client server the machine's own address,
a Serve replica's inter-deployment gRPC server `[::]:0` (serve/_private/replica.py), and
Serve's HAProxy its stats page `*:<port>` and metrics `:<port>` (the config template in
serve/_private/haproxy_templates.py has no host for either, and no way to turn them off).
Most of these ports are picked at random when a process starts, so no port list can cover
them.

The guard therefore marks the processes, not the ports:

* a cgroup v2 `movierec-<id>` (directly under the cgroup2 mount): every process started from
  a process in it inherits it, so `ray start` (or a `ray.init` in this process) puts the whole
  instance there, HAProxy and every replica included;
* an nftables table `inet movierec_<id>` whose input chain drops every packet bound for a
  socket of that cgroup (`socket cgroupv2`) that arrives from the network: anything but the
  loopback interface, unless it belongs to a connection the instance opened itself
  (`ct state established,related`: replies from an external Redis, a package index).

Traffic from this machine to itself goes through the loopback interface whatever address it
is sent to, and stays allowed: Ray reaches its own GCS at the machine's address even with
`--node-ip-address 127.0.0.1`, and a local user could use 127.0.0.1 anyway. So a connection
from another host to any port of the instance times out, while the machine itself works.
Nothing else on the machine is touched (other Ray instances, other users' services). It
needs root (nftables, cgroups), `nft` (Debian's `nftables` package) and a cgroup2 mount under
/sys/fs/cgroup (pure v2 or hybrid).

`MOVIEREC_NETGUARD` (`auto` by default) says what to do when it cannot be applied: `auto`
warns and goes on, `on` refuses, `off` never applies it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

NFT_CGROUP_BASE = Path("/sys/fs/cgroup")
"""nft resolves a `socket cgroupv2` path relative to this directory."""
CGROUP_PREFIX = "movierec-"
TABLE_PREFIX = "movierec_"
MODES = ("auto", "on", "off")


class GuardError(RuntimeError):
    """The guard cannot be applied here (the message says why) or an nft command failed."""


def mode() -> str:
    """`MOVIEREC_NETGUARD`: auto (default), on or off."""
    value = os.environ.get("MOVIEREC_NETGUARD", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise GuardError(f"MOVIEREC_NETGUARD={value!r}: expected one of {', '.join(MODES)}")
    return value


def cgroup2_mount(mounts: str | None = None) -> Path | None:
    """Where the cgroup2 hierarchy is mounted (None when it is not), from /proc/self/mounts."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            return Path(fields[1])
    return None


def unavailable() -> str | None:
    """None when the guard can be applied here, else why not."""
    if os.geteuid() != 0:
        return "needs root (nftables and cgroups)"
    if shutil.which("nft") is None:
        return "nft not found: install Debian's nftables package (`make nftables`)"
    mount = cgroup2_mount()
    if mount is None:
        return "no cgroup2 hierarchy mounted"
    if not mount.is_relative_to(NFT_CGROUP_BASE):
        return f"the cgroup2 hierarchy is mounted at {mount}, not under {NFT_CGROUP_BASE}"
    return None


def _nft(script: str | None, *args: str) -> str:
    command = ["nft", *args] if script is None else ["nft", "-f", "-"]
    done = subprocess.run(
        command, input=script, capture_output=True, text=True, check=False, timeout=30
    )
    if done.returncode != 0:
        raise GuardError(f"nft {' '.join(args) or '-f -'}: {done.stderr.strip()}")
    return done.stdout


@dataclass(frozen=True)
class Guard:
    """One instance's cgroup and nftables table.

    Attributes:
        ident: Short id: the cgroup is `movierec-<ident>`, the table `inet movierec_<ident>`.
        mount: The cgroup2 mount.
    """

    ident: str
    mount: Path

    @classmethod
    def named(cls, ident: str) -> Guard:
        """The guard with this id (nothing applied yet).

        Raises:
            GuardError: No cgroup2 hierarchy.
        """
        mount = cgroup2_mount()
        if mount is None:
            raise GuardError("no cgroup2 hierarchy mounted")
        return cls(ident, mount)

    @classmethod
    def for_run_dir(cls, run_dir: Path) -> Guard:
        """The guard of the instance whose state lives in `run_dir` (stable id)."""
        digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:10]
        return cls.named(digest)

    @property
    def cgroup(self) -> Path:
        """The cgroup directory."""
        return self.mount / f"{CGROUP_PREFIX}{self.ident}"

    @property
    def table(self) -> str:
        """The nftables table name (family inet)."""
        return f"{TABLE_PREFIX}{self.ident}"

    def ruleset(self) -> str:
        """The nft script that creates the table (replacing an older one of the same name)."""
        path = self.cgroup.relative_to(NFT_CGROUP_BASE)
        match = f'socket cgroupv2 level 1 "{path}"'
        return (
            f"table inet {self.table}\n"
            f"delete table inet {self.table}\n"
            f"table inet {self.table} {{\n"
            "  chain input {\n"
            "    type filter hook input priority filter; policy accept;\n"
            '    iifname "lo" accept\n'
            "    ct state established,related accept\n"
            f"    {match} drop\n"
            "  }\n"
            "}\n"
        )

    def apply(self) -> None:
        """Creates the cgroup and the table (idempotent).

        Raises:
            GuardError: Not possible here, or nft refused the rules.
        """
        reason = unavailable()
        if reason is not None:
            raise GuardError(reason)
        try:
            self.cgroup.mkdir(exist_ok=True)
        except OSError as exc:  # e.g. a read-only cgroup2 mount in a container
            raise GuardError(f"cannot create {self.cgroup}: {exc}") from exc
        try:
            _nft(self.ruleset())
        except (GuardError, OSError) as exc:  # e.g. a kernel without nft's socket expression
            with contextlib.suppress(OSError):
                self.cgroup.rmdir()
            raise GuardError(str(exc)) from exc

    def active(self) -> bool:
        """Whether the table exists."""
        try:
            _nft(None, "list", "table", "inet", self.table)
        except (GuardError, OSError):
            return False
        return True

    def join(self, pid: int | None = None) -> None:
        """Moves a process (default: this one, all its threads) into the cgroup; the processes
        it starts from then on are in it too."""
        (self.cgroup / "cgroup.procs").write_text(f"{pid or os.getpid()}\n")

    def pids(self) -> list[int]:
        """The processes in the cgroup."""
        try:
            text = (self.cgroup / "cgroup.procs").read_text()
        except OSError:
            return []
        return [int(line) for line in text.split()]

    def remove(self, kill_after_s: float = 10.0) -> None:
        """Deletes the table and the cgroup. Processes still in the cgroup (the instance's,
        by construction) get SIGTERM, then SIGKILL after `kill_after_s`."""
        with contextlib.suppress(GuardError, OSError):
            _nft(None, "delete", "table", "inet", self.table)
        if not self.cgroup.exists():
            return
        own = os.getpid()
        for sig, wait_s in ((signal.SIGTERM, kill_after_s), (signal.SIGKILL, 5.0)):
            left = [pid for pid in self.pids() if pid != own]
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait_s
            while [p for p in self.pids() if p != own] and time.monotonic() < deadline:
                time.sleep(0.1)
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()


def own_cgroup() -> Path | None:
    """This process's cgroup v2 directory (None without a cgroup2 hierarchy)."""
    mount = cgroup2_mount()
    if mount is None:
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    return None


def current_guard() -> Guard | None:
    """The guard this process is in (`guarding_this_process`), if any."""
    cgroup = own_cgroup()
    mount = cgroup2_mount()
    if cgroup is None or mount is None or cgroup.parent != mount:
        return None
    if not cgroup.name.startswith(CGROUP_PREFIX):
        return None
    return Guard(cgroup.name.removeprefix(CGROUP_PREFIX), mount)


def warn_unguarded(reason: str) -> None:
    """The warning printed when the guard cannot be applied in `auto` mode."""
    logger.warning(
        "loopback guard not applied (%s): Ray's ports are reachable from the network "
        "(README 'Security / threat model'); MOVIEREC_NETGUARD=off silences this",
        reason,
    )


@contextlib.contextmanager
def guarding_this_process(ident: str | None = None) -> Iterator[Guard | None]:
    """Applies a guard and puts this process in its cgroup for the duration: a `ray.init`
    inside starts a guarded Ray instance (tests, benchmarks). Afterwards this process returns
    to its own cgroup, and what is left in the guard's (Ray processes still exiting) is
    stopped before the guard is removed.

    Yields:
        The guard, or None when it was not applied (`MOVIEREC_NETGUARD=off`, or `auto` where
        it is not possible: a warning is logged).

    Raises:
        GuardError: `MOVIEREC_NETGUARD=on` and it cannot be applied.
    """
    wanted = mode()
    reason = "MOVIEREC_NETGUARD=off" if wanted == "off" else unavailable()
    if reason is not None:
        if wanted == "on":
            raise GuardError(f"MOVIEREC_NETGUARD=on but {reason}")
        if wanted == "auto":
            warn_unguarded(reason)
        yield None
        return
    guard = Guard.named(ident or uuid.uuid4().hex[:10])
    home = own_cgroup()
    try:
        guard.apply()
    except GuardError as exc:
        if wanted == "on":
            raise
        warn_unguarded(str(exc))
        yield None
        return
    try:
        guard.join()
        yield guard
    finally:
        if home is not None:
            with contextlib.suppress(OSError):
                (home / "cgroup.procs").write_text(f"{os.getpid()}\n")
        guard.remove()
