"""Unit tests of the Ray Serve mode variables (pure logic)."""

from __future__ import annotations

from deployments.serve_env import DEFAULT_MODE_ENV, SERVE_ENV, haproxy_ports, serve_env


def test_serve_env_defaults_and_overrides() -> None:
    assert serve_env({}) == dict(SERVE_ENV)
    assert serve_env({"RAY_SERVE_ENABLE_HA_PROXY": "0"})["RAY_SERVE_ENABLE_HA_PROXY"] == "0"
    assert serve_env({DEFAULT_MODE_ENV: "1"}) == {}


def test_haproxy_ports() -> None:
    assert haproxy_ports(1, 2) == {
        "RAY_SERVE_HAPROXY_STATS_PORT": "1",
        "RAY_SERVE_HAPROXY_METRICS_PORT": "2",
    }
