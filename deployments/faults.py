"""Fault injection for resilience tests and drills: a stage made slow or failing on purpose.

Each stage deployment's `user_config` may carry `faults` (`FaultSettings`: a delay, an error
rate, the methods they apply to). It cannot be switched on by accident:

* it is off by default, and `serve_config.yaml` carries none;
* a non-empty `faults` is refused unless the replica's environment also sets
  `MOVIEREC_ALLOW_FAULT_INJECTION=true`, and always refused when
  `MOVIEREC_ENVIRONMENT=production`. A refusal is logged as an ERROR and shown in `health()`;
  it does not fail the config update: raising in `reconfigure` makes Serve stop the replica,
  which would take the stage down instead of protecting it;
* while it is on, every replica logs a WARNING at each (re)configuration and its `health()`
  reports it.
"""

from __future__ import annotations

import asyncio
import logging
import random

from pydantic import BaseModel, ConfigDict, Field

from movierec.settings import Settings, get_settings

logger = logging.getLogger(__name__)


class FaultSettings(BaseModel):
    """A stage's injected faults (`user_config.faults`).

    Attributes:
        delay_s: Added before each call of the targeted methods, in seconds.
        error_rate: Probability that a targeted call raises `InjectedFaultError`.
        methods: Targeted methods (e.g. ["rank"]); empty: every request method (never
            `health` or `check_health`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_s: float = Field(default=0.0, ge=0.0, le=30.0)
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    methods: frozenset[str] = frozenset()

    @property
    def active(self) -> bool:
        """Whether any fault is injected."""
        return self.delay_s > 0 or self.error_rate > 0


class InjectedFaultError(RuntimeError):
    """The error an injected fault raises."""


class FaultInjector:
    """Applies one stage's `FaultSettings` (none until configured)."""

    def __init__(self, stage: str, rng: random.Random | None = None) -> None:
        self._stage = stage
        self._settings = FaultSettings()
        self._refused: str | None = None
        self._rng = rng or random.Random()  # noqa: S311 - chaos, not cryptography

    @property
    def settings(self) -> FaultSettings:
        """The faults in force."""
        return self._settings

    @property
    def refused(self) -> str | None:
        """Why the last requested faults were refused (None if they were not)."""
        return self._refused

    def configure(self, settings: FaultSettings, app_settings: Settings | None = None) -> None:
        """Applies new fault settings, if this environment allows them; a refusal is logged
        as an ERROR, leaves no fault in force and is reported by `describe()`."""
        self._refused = None
        if settings.active:
            env = app_settings or get_settings()
            if env.environment == "production":
                self._refused = "fault injection is refused in production"
            elif not env.allow_fault_injection:
                self._refused = (
                    "user_config.faults needs MOVIEREC_ALLOW_FAULT_INJECTION=true in the "
                    "replicas' environment"
                )
            if self._refused is not None:
                logger.error("%s: %s; no fault injected", self._stage, self._refused)
                settings = FaultSettings()
            else:
                logger.warning(
                    "FAULT INJECTION ON in %s: delay %.3f s, error rate %.2f, methods %s",
                    self._stage,
                    settings.delay_s,
                    settings.error_rate,
                    sorted(settings.methods) or "all",
                )
        if not settings.active and self._settings.active:
            logger.warning("fault injection off in %s", self._stage)
        self._settings = settings

    async def apply(self, method: str) -> None:
        """Delays and/or fails this call as configured (a no-op when off).

        Raises:
            InjectedFaultError: The call drew an injected error.
        """
        settings = self._settings
        if not settings.active or (settings.methods and method not in settings.methods):
            return
        if settings.delay_s > 0:
            await asyncio.sleep(settings.delay_s)
        if settings.error_rate > 0 and self._rng.random() < settings.error_rate:
            raise InjectedFaultError(f"injected fault in {self._stage}.{method}")

    def describe(self) -> dict[str, object] | None:
        """The faults in force (or the refusal) for `health()`; None when off."""
        s = self._settings
        if self._refused is not None:
            return {"refused": self._refused}
        if not s.active:
            return None
        return {"delay_s": s.delay_s, "error_rate": s.error_rate, "methods": sorted(s.methods)}


__all__ = [
    "FaultInjector",
    "FaultSettings",
    "InjectedFaultError",
]
