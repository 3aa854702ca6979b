"""When a submitted Serve config counts as deployed, failed, or still on its way: one rule
for `make run`'s wait (`deployments.cli`) and the benchmarks' and tests' deploys.

Serve reports an application DEPLOY_FAILED when its replicas cannot be started: that is final.
UNHEALTHY means a running replica failed a health check or died, and Serve is already replacing
it; a stage that lost Redis for a moment, or a machine busy enough to delay a check, shows it
for seconds. So UNHEALTHY fails a deploy only when it lasts `unhealthy_grace_s`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

Verdict = Literal["running", "failed", "waiting"]

UNHEALTHY_GRACE_S = 60.0
"""How long an application may stay UNHEALTHY (Serve replacing a replica) before a deploy
gives up on it: several health-check periods and a replica's start on a busy 2-core machine."""


@dataclass
class DeployWatch:
    """Reads an application's successive statuses; `observe` says what they amount to."""

    unhealthy_grace_s: float = UNHEALTHY_GRACE_S
    _unhealthy_since: float | None = field(default=None, init=False)

    def observe(self, status: str | Enum | None, now: float) -> Verdict:
        """The verdict after seeing `status` (None: the app is not listed yet) at time `now`
        (seconds, any monotonic clock)."""
        state = status.value if isinstance(status, Enum) else status
        if state == "RUNNING":
            self._unhealthy_since = None
            return "running"
        if state == "DEPLOY_FAILED":
            return "failed"
        if state != "UNHEALTHY":
            self._unhealthy_since = None
            return "waiting"
        if self._unhealthy_since is None:
            self._unhealthy_since = now
        return "failed" if now - self._unhealthy_since >= self.unhealthy_grace_s else "waiting"
