"""Another host, on this machine, for reachability tests.

A network namespace joined to the host by a veth pair and routed to the host's own addresses:
a connection from it arrives on a non-loopback interface, as one from another machine on the
network would (a connection from the machine to its own address goes through loopback).
Needs root and `ip` (iproute2). Everything it creates is deleted on exit.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import psutil

PROBE = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor

def connects(target):
    host, port = target
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((host, port))
            return True
        except OSError:
            return False

targets = [tuple(t) for t in json.loads(sys.argv[1])]
# Concurrent connects, each with its own 1 s timeout: a dropped SYN (the guard) costs 1 s once
# for the whole batch, not once per port. Order of the answers = order of the targets.
with ThreadPoolExecutor(max_workers=max(1, min(64, len(targets)))) as pool:
    out = list(pool.map(connects, targets))
print(json.dumps(out))
"""

Probe = Callable[[Sequence[tuple[str, int]]], list[bool]]


def host_addresses() -> list[str]:
    """This machine's non-loopback, non-link-local addresses (IPv4 and IPv6)."""
    out = []
    for name, addresses in psutil.net_if_addrs().items():
        if name.startswith("mrv"):  # the veth pairs of this module
            continue
        for address in addresses:
            if address.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            ip = ipaddress.ip_address(address.address.split("%", 1)[0])
            if not (ip.is_loopback or ip.is_link_local):
                out.append(str(ip))
    return out


def _ip(*args: str, netns: str | None = None) -> None:
    command = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    subprocess.run(command, check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def remote_host() -> Iterator[Probe]:
    """Yields `probe([(host, port), ...])` -> whether each TCP connect succeeded from the
    other host (1 s timeout each; the connects run concurrently)."""
    tag = uuid.uuid4().hex[:6]
    netns, outer, inner = f"mr-remote-{tag}", f"mrv{tag}a", f"mrv{tag}b"
    net, sub = random.randrange(256), random.randrange(64)
    host4, peer4 = f"10.251.{net}.{4 * sub + 1}", f"10.251.{net}.{4 * sub + 2}"
    host6, peer6 = f"fd51:{net:x}:{sub:x}::1", f"fd51:{net:x}:{sub:x}::2"
    try:
        _ip("netns", "add", netns)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", netns)
        _ip("addr", "add", f"{host4}/30", "dev", outer)
        _ip("-6", "addr", "add", f"{host6}/64", "dev", outer, "nodad")
        _ip("link", "set", outer, "up")
        _ip("link", "set", "lo", "up", netns=netns)
        _ip("addr", "add", f"{peer4}/30", "dev", inner, netns=netns)
        _ip("-6", "addr", "add", f"{peer6}/64", "dev", inner, "nodad", netns=netns)
        _ip("link", "set", inner, "up", netns=netns)
        _ip("route", "add", "default", "via", host4, netns=netns)
        _ip("-6", "route", "add", "default", "via", host6, netns=netns)

        def probe(targets: Sequence[tuple[str, int]]) -> list[bool]:
            done = subprocess.run(
                ["ip", "netns", "exec", netns, sys.executable, "-c", PROBE, json.dumps(targets)],
                check=True,
                capture_output=True,
                text=True,
                timeout=30 + 2 * len(targets),
            )
            result: list[bool] = json.loads(done.stdout)
            return result

        yield probe
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            _ip("link", "del", outer)
        with contextlib.suppress(subprocess.SubprocessError):
            _ip("netns", "del", netns)


CONTROL = """
import socket, sys, time
sys.stdin.readline()  # moved out of any guard first
s = socket.create_server(("0.0.0.0", 0))
print(s.getsockname()[1], flush=True)
sys.stdin.readline()
"""


@contextlib.contextmanager
def control_listener() -> Iterator[int]:
    """A TCP listener on every interface in the root cgroup, outside any guard (this process
    may be in one: its children would be too); yields its port."""
    from movierec.netguard import cgroup2_mount

    child = subprocess.Popen(
        [sys.executable, "-c", CONTROL], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        mount = cgroup2_mount()
        if mount is not None:
            (mount / "cgroup.procs").write_text(f"{child.pid}\n")
        child.stdin.write("go\n")
        child.stdin.flush()
        yield int(child.stdout.readline())
    finally:
        child.kill()
        child.wait()


def listener_report(processes: Iterable[psutil.Process], guarded: set[int]) -> ListenerReport:
    """Every listening TCP socket and bound UDP socket of `processes`, checked: one on
    loopback is fine; one beyond loopback must belong to a process in `guarded` (the guard's
    cgroup) and, for TCP, be unreachable from another host at each of this machine's
    addresses it answers on (probed through `remote_host`, with a control listener outside
    the guard that must be reachable)."""
    hosts = host_addresses()
    report = ListenerReport(hosts)
    targets: list[tuple[str, int]] = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
            name = process.name()
        except psutil.NoSuchProcess:
            continue
        for conn in connections:
            listening = conn.status == psutil.CONN_LISTEN or conn.type == socket.SOCK_DGRAM
            if not listening or not conn.laddr:
                continue
            ip = ipaddress.ip_address(conn.laddr.ip)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
            where = f"{name}[{process.pid}] {conn.type.name} {conn.laddr.ip}:{conn.laddr.port}"
            if ip.is_loopback:
                report.loopback.append(where)
                continue
            report.beyond.append(where)
            if process.pid not in guarded:
                report.exposed.append(f"{where}: not in the guard's cgroup")
            if conn.type == socket.SOCK_STREAM:
                # 0.0.0.0: every IPv4 address; :: (dual stack): every address; else itself.
                wildcard = [h for h in hosts if ip.version == 6 or ":" not in h]
                at = wildcard if ip.is_unspecified else [str(ip)]
                targets += [(host, conn.laddr.port) for host in at]
    if hosts:
        with remote_host() as probe, control_listener() as control:
            reached = probe([(hosts[0], control), *targets])
        report.probe_works = reached[0]
        report.probed = len(targets)
        report.exposed += [
            f"{host}:{port} reachable from another host"
            for (host, port), hit in zip(targets, reached[1:], strict=True)
            if hit
        ]
    return report


@dataclass
class ListenerReport:
    """What `listener_report` found."""

    hosts: list[str]
    loopback: list[str] = field(default_factory=list)
    beyond: list[str] = field(default_factory=list)
    exposed: list[str] = field(default_factory=list)
    probed: int = 0
    probe_works: bool = False

    def print(self, name: str) -> None:
        """The figures, and every socket."""
        print(
            f"\n[{name}] {len(self.loopback)} sockets on loopback, {len(self.beyond)} beyond "
            f"loopback (guarded; {self.probed} connects from another host to {self.hosts}), "
            f"{len(self.exposed)} exposed"
        )
        for where in self.loopback:
            print(f"  loopback: {where}")
        for where in self.beyond:
            print(f"  beyond loopback, guarded: {where}")
