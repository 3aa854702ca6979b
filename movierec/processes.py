"""Stopping a child process this process started (`subprocess.Popen`)."""

from __future__ import annotations

import subprocess
from typing import Any


def stop_child(
    process: subprocess.Popen[Any], grace_s: float, kill_wait_s: float | None = None
) -> None:
    """SIGTERM `process` if it still runs, SIGKILL it when it has not exited after `grace_s`
    seconds, and reap it (after a kill, waiting at most `kill_wait_s`; None: until it is gone).

    Raises:
        subprocess.TimeoutExpired: It survived SIGKILL for `kill_wait_s` seconds.
    """
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=kill_wait_s)
