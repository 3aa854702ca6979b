"""The loopback guard: its pure parts, and (as root) the real rule set on a listening process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from movierec import netguard
from movierec.netguard import Guard, GuardError, cgroup2_mount, guarding_this_process
from tests.movierec._remote import host_addresses, remote_host

HYBRID = """cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
PURE_V2 = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def test_the_cgroup2_mount_is_found_in_hybrid_and_pure_v2_layouts() -> None:
    assert cgroup2_mount(HYBRID) == Path("/sys/fs/cgroup/unified")
    assert cgroup2_mount(PURE_V2) == Path("/sys/fs/cgroup")
    assert cgroup2_mount("proc /proc proc rw 0 0\n") is None


def test_the_rules_drop_non_loopback_packets_to_the_cgroups_sockets_only() -> None:
    guard = Guard("abc123", Path("/sys/fs/cgroup/unified"))
    assert guard.cgroup == Path("/sys/fs/cgroup/unified/movierec-abc123")
    assert guard.table == "movierec_abc123"
    rules = guard.ruleset()
    assert 'socket cgroupv2 level 1 "unified/movierec-abc123" drop' in rules
    assert rules.index('iifname "lo" accept') < rules.index("drop")  # this machine: allowed
    assert "ct state established,related accept" in rules
    assert "policy accept" in rules  # nothing else on the machine is filtered
    assert Guard("x", Path("/sys/fs/cgroup")).ruleset().count('"movierec-x"') == 1


def test_the_guard_of_a_run_dir_is_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netguard, "cgroup2_mount", lambda mounts=None: Path("/sys/fs/cgroup"))
    assert Guard.for_run_dir(tmp_path) == Guard.for_run_dir(tmp_path / ".." / tmp_path.name)
    assert Guard.for_run_dir(tmp_path) != Guard.for_run_dir(tmp_path / "other")


def test_the_mode_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOVIEREC_NETGUARD", raising=False)
    assert netguard.mode() == "auto"
    monkeypatch.setenv("MOVIEREC_NETGUARD", "OFF")
    assert netguard.mode() == "off"
    monkeypatch.setenv("MOVIEREC_NETGUARD", "maybe")
    with pytest.raises(GuardError, match="MOVIEREC_NETGUARD"):
        netguard.mode()


def test_off_applies_nothing_and_on_refuses_where_it_is_impossible(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOVIEREC_NETGUARD", "off")
    with guarding_this_process() as guard:
        assert guard is None
    monkeypatch.setattr(netguard, "unavailable", lambda: "needs root")
    monkeypatch.setenv("MOVIEREC_NETGUARD", "on")
    with pytest.raises(GuardError, match="needs root"), guarding_this_process():
        pass
    monkeypatch.setenv("MOVIEREC_NETGUARD", "auto")
    with guarding_this_process() as guard:  # warns, goes on
        assert guard is None


def test_auto_goes_on_unguarded_when_the_rules_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Guard) -> None:
        raise GuardError("nft: the kernel lacks the socket expression")

    monkeypatch.setattr(netguard, "unavailable", lambda: None)
    monkeypatch.setattr(netguard, "cgroup2_mount", lambda mounts=None: Path("/sys/fs/cgroup"))
    monkeypatch.setattr(Guard, "apply", refuse)
    monkeypatch.setenv("MOVIEREC_NETGUARD", "auto")
    with guarding_this_process() as guard:
        assert guard is None
    monkeypatch.setenv("MOVIEREC_NETGUARD", "on")
    with pytest.raises(GuardError, match="socket expression"), guarding_this_process():
        pass


LISTENER = """
import socket, sys, time
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 0))
s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(120)
"""


@pytest.mark.integration
def test_a_guarded_process_listening_everywhere_is_unreachable_from_another_host() -> None:
    reason = netguard.unavailable()
    if reason is not None:
        pytest.skip(reason)
    hosts = [h for h in host_addresses() if ":" not in h]
    if not hosts:
        pytest.skip("no non-loopback IPv4 address")

    def listen() -> tuple[subprocess.Popen[bytes], int]:
        child = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE)
        assert child.stdout is not None
        return child, int(child.stdout.readline())

    outside, outside_port = listen()  # started before: not in the guard
    try:
        with remote_host() as probe, guarding_this_process() as guard:
            assert guard is not None and guard.active()
            child, port = listen()
            assert child.pid in guard.pids() and outside.pid not in guard.pids()
            assert probe([(hosts[0], port), (hosts[0], outside_port)]) == [False, True]
            # This machine itself, on loopback or its own address, still gets through.
            assert _reachable("127.0.0.1", port) and _reachable(hosts[0], port)
        started = time.monotonic()
        child.wait(timeout=30)  # stopped with the guard
        assert time.monotonic() - started < 30
        assert not guard.active() and not guard.cgroup.exists()
        assert outside.poll() is None
    finally:
        outside.kill()
        outside.wait()


def _reachable(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        try:
            sock.connect((host, port))
        except OSError:
            return False
    return True
