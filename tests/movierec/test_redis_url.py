"""Tests of Redis URL resolution (what replicas import), against real redis-server processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from movierec.redis_server import HOST, embedded_redis, pick_free_port
from movierec.redis_url import (
    MissingSearchModuleError,
    RedisNotRunningError,
    RedisServerError,
    mask_url,
    read_state,
    resolve_redis_url,
)
from movierec.settings import PROJECT_ROOT, get_settings


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@127.0.0.1:1234/0", "redis://:***@127.0.0.1:1234/0"),
        ("rediss://alice:s3cret@example.com:6380", "rediss://alice:***@example.com:6380"),
        ("redis://s3cret@example.com", "redis://***@example.com"),
        ("redis://example.com:6379/1", "redis://example.com:6379/1"),
        ("s3cret@example.com:6379", "***@example.com:6379"),
        ("unix:///tmp/redis.sock?password=s3cret&db=2", "unix:///tmp/redis.sock?password=***&db=2"),
    ],
)
def test_mask_url_hides_the_password(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_url_without_running_server_is_a_clear_error(isolated_settings: Path) -> None:
    with pytest.raises(RedisNotRunningError, match="not running"):
        resolve_redis_url()


def test_importing_it_does_not_load_the_server_supervisor() -> None:
    """Replicas import this module: it must not pull in the embedded server's package."""
    probe = "import sys, movierec.redis_url; print('movierec.redis_server' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "False"


@pytest.mark.integration
def test_embedded_server_is_found_through_its_state_file(isolated_settings: Path) -> None:
    with embedded_redis(isolated_settings) as url:
        state = read_state(isolated_settings)
        assert state is not None and state.url == url
        assert resolve_redis_url() == url
    with pytest.raises(RedisNotRunningError):
        resolve_redis_url()


@pytest.mark.integration
def test_external_redis_without_search_is_refused(
    isolated_settings: Path, plain_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", plain_redis_url)
    get_settings.cache_clear()
    with pytest.raises(MissingSearchModuleError) as caught:
        resolve_redis_url()
    message = str(caught.value)
    assert "lacks the query engine" in message
    assert mask_url(plain_redis_url) in message
    assert "plain-redis-secret" not in message


@pytest.mark.integration
def test_external_redis_with_search_is_used(
    isolated_settings: Path, embedded_redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", embedded_redis_url)
    get_settings.cache_clear()
    assert resolve_redis_url() == embedded_redis_url


@pytest.mark.integration
def test_unreachable_external_redis_is_a_clear_error(
    isolated_settings: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@{HOST}:{pick_free_port()}/0")
    get_settings.cache_clear()
    with pytest.raises(RedisServerError, match="cannot reach") as caught:
        resolve_redis_url()
    assert "hunter2" not in str(caught.value)
