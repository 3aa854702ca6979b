"""Fault injection: off by default, refused unless explicitly allowed, never in production."""

from __future__ import annotations

import asyncio
import logging
import random
import time

import pytest
from pydantic import ValidationError

from deployments.config import RankingSettings
from deployments.faults import (
    FaultInjector,
    FaultSettings,
    InjectedFaultError,
)
from movierec.settings import Settings

ALLOWED = Settings(allow_fault_injection=True)


def test_off_by_default_everywhere() -> None:
    assert not FaultSettings().active
    assert not RankingSettings().faults.active
    injector = FaultInjector("ranking")
    asyncio.run(injector.apply("rank"))  # no-op
    assert injector.describe() is None


def test_refused_without_the_environment_switch_and_in_production(
    caplog: pytest.LogCaptureFixture,
) -> None:
    injector = FaultInjector("ranking")
    slow = FaultSettings(delay_s=0.2)
    with caplog.at_level(logging.ERROR):
        injector.configure(slow, Settings(allow_fault_injection=False))
    assert "MOVIEREC_ALLOW_FAULT_INJECTION" in caplog.text
    assert not injector.settings.active  # nothing injected
    assert "MOVIEREC_ALLOW_FAULT_INJECTION" in str(injector.describe())
    production = Settings(allow_fault_injection=True, environment="production")
    injector.configure(slow, production)
    assert not injector.settings.active
    assert injector.describe() == {"refused": "fault injection is refused in production"}
    started = time.perf_counter()
    asyncio.run(injector.apply("rank"))
    assert time.perf_counter() - started < 0.1
    injector.configure(FaultSettings(), production)  # asking for none is always fine
    assert injector.describe() is None and injector.refused is None


def test_enabled_faults_delay_and_fail_only_their_methods(caplog: pytest.LogCaptureFixture) -> None:
    injector = FaultInjector("ranking", rng=random.Random(0))
    with caplog.at_level(logging.WARNING):
        injector.configure(
            FaultSettings(delay_s=0.05, error_rate=1.0, methods=frozenset({"rank"})), ALLOWED
        )
    assert "FAULT INJECTION ON in ranking" in caplog.text
    assert injector.describe() == {"delay_s": 0.05, "error_rate": 1.0, "methods": ["rank"]}

    started = time.perf_counter()
    with pytest.raises(InjectedFaultError):
        asyncio.run(injector.apply("rank"))
    assert time.perf_counter() - started >= 0.05
    asyncio.run(injector.apply("stats"))  # not targeted

    injector.configure(FaultSettings(), ALLOWED)
    asyncio.run(injector.apply("rank"))


def test_error_rate_is_a_probability() -> None:
    injector = FaultInjector("features", rng=random.Random(1))
    injector.configure(FaultSettings(error_rate=0.3), ALLOWED)

    async def count_failures(n: int) -> int:
        failures = 0
        for _ in range(n):
            try:
                await injector.apply("user")
            except InjectedFaultError:
                failures += 1
        return failures

    failures = asyncio.run(count_failures(2000))
    assert 0.25 < failures / 2000 < 0.35


def test_fault_settings_are_bounded_and_strict() -> None:
    with pytest.raises(ValidationError):
        FaultSettings(error_rate=1.5)
    with pytest.raises(ValidationError):
        FaultSettings(delay_s=-1)
    with pytest.raises(ValidationError):
        RankingSettings.model_validate({"faults": {"delay": 1}})  # a typo fails the deploy
