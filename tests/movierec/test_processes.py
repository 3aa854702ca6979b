"""`stop_child` on real child processes: SIGTERM first, SIGKILL only for one that ignores it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from movierec.processes import stop_child

IGNORES_SIGTERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_a_child_that_obeys_sigterm_is_stopped_by_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_child(child, grace_s=10)
    assert child.returncode == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    started = time.monotonic()
    stop_child(child, grace_s=0.5, kill_wait_s=10)
    assert child.returncode == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5  # SIGTERM was given its grace first
    child.stdout.close()


def test_a_child_that_already_exited_is_left_alone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    stop_child(child, grace_s=10)
    assert child.returncode == 0
