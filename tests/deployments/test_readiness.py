"""`DeployWatch`: the statuses a deploy goes through, and the verdicts they amount to."""

from __future__ import annotations

from ray.serve.schema import ApplicationStatus

from deployments.readiness import DeployWatch


def test_running_is_done_and_deploy_failed_is_final() -> None:
    watch = DeployWatch(unhealthy_grace_s=60.0)
    assert watch.observe(None, 0.0) == "waiting"  # not listed yet
    assert watch.observe("DEPLOYING", 1.0) == "waiting"
    assert watch.observe("RUNNING", 2.0) == "running"
    assert DeployWatch().observe("DEPLOY_FAILED", 0.0) == "failed"


def test_unhealthy_is_waited_out_for_the_grace_then_fails() -> None:
    watch = DeployWatch(unhealthy_grace_s=10.0)
    assert watch.observe("UNHEALTHY", 100.0) == "waiting"
    assert watch.observe("UNHEALTHY", 109.9) == "waiting"  # 9.9 s < 10 s
    assert watch.observe("UNHEALTHY", 110.0) == "failed"  # 10 s since it was first seen


def test_a_replaced_replica_restarts_the_grace() -> None:
    """UNHEALTHY, then DEPLOYING (the new replica starting), then UNHEALTHY again: the grace
    counts from the second UNHEALTHY, not the first."""
    watch = DeployWatch(unhealthy_grace_s=10.0)
    assert watch.observe("UNHEALTHY", 0.0) == "waiting"
    assert watch.observe("DEPLOYING", 8.0) == "waiting"
    assert watch.observe("UNHEALTHY", 9.0) == "waiting"
    assert watch.observe("UNHEALTHY", 18.0) == "waiting"  # 9 s since 9.0
    assert watch.observe("UNHEALTHY", 19.0) == "failed"
    assert watch.observe("RUNNING", 20.0) == "running"


def test_serve_status_enums_are_read_by_value() -> None:
    """`serve.status()` gives `ApplicationStatus` members, `serve status` plain strings."""
    watch = DeployWatch(unhealthy_grace_s=5.0)
    assert watch.observe(ApplicationStatus.UNHEALTHY, 0.0) == "waiting"
    assert watch.observe(ApplicationStatus.UNHEALTHY, 5.0) == "failed"
    assert DeployWatch().observe(ApplicationStatus.RUNNING, 0.0) == "running"
