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
from collections.abc import Callable, Iterator, Sequence

import psutil

PROBE = """
import json, socket, sys
out = []
for host, port in json.loads(sys.argv[1]):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((host, port))
            out.append(True)
        except OSError:
            out.append(False)
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
    other host (1 s timeout each)."""
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
