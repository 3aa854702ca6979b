"""Suite-wide pytest configuration and fixtures.

``embedded_redis_url`` starts one real, throwaway Redis (redis-server + RediSearch, random
port, private temp dir) per session; ``redis_client`` hands a test a client on it after
``FLUSHALL``. Neither reads ``REDIS_URL``: a test must never flush a real Redis.
``local_s3`` starts one local S3-compatible server (moto's, credentials checked, see
`movierec.s3_server`) per session; ``s3_env`` points a test's AWS chain at it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from movierec import s3_server
from movierec.redis_server import embedded_redis

# TFRS 0.7.7 on TF 2.21 needs the legacy Keras; this must be set before TF is imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a skipped test counts as a failure: it proved nothing."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not os.environ.get("CI") or reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; failing the run.", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL (password included) of a session-wide throwaway embedded Redis."""
    with embedded_redis(tmp_path_factory.mktemp("embedded-redis")) as url:
        yield url


@pytest.fixture
def redis_client(embedded_redis_url: str) -> Iterator[redis.Redis]:
    """A client on the session's embedded Redis, emptied (keys and indexes) first."""
    client = redis.Redis.from_url(embedded_redis_url)
    client.flushall()
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def local_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3_server.LocalS3]:
    """A session-wide local S3 server on 127.0.0.1 with a generated key and a bucket."""
    run_dir = tmp_path_factory.mktemp("s3")
    state = s3_server.start(run_dir, bucket="movierec-test")
    try:
        yield state
    finally:
        s3_server.stop(run_dir)


@pytest.fixture
def s3_env(local_s3: s3_server.LocalS3, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The AWS chain (endpoint, credentials file, profile) pointed at `local_s3`, and
    MOVIEREC_STORAGE_URI at a prefix of its bucket unique to the test."""
    env = local_s3.env(prefix=f"t-{os.urandom(4).hex()}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env
