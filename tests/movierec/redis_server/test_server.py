"""Tests of starting, stopping and inspecting the embedded Redis (real redis-server processes)."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from movierec.redis_server import (
    HOST,
    PortInUseError,
    RedisPaths,
    RedisServerError,
    embedded_redis,
    find_binaries,
    pick_free_port,
    read_state,
    save_snapshot,
    start,
    status,
    stop,
)
from movierec.redis_server.process import pid_alive
from movierec.redis_server.server import launch
from tests.movierec.redis_server._sockets import can_bind

DIM = 8
QUERY: list[float] = [1, 0, 0, 0, 0, 0, 0, 0]
# key: (genres, year, embedding). Movies 3, 4 and 7 equal the query vector but fail
# the filter (year, genre, year), so a KNN that ignored the filter would return them.
MOVIES: dict[str, tuple[str, int, list[float]]] = {
    "movie:1": ("Drama", 1995, [1, 0, 1, 1, 0, 0, 0, 0]),
    "movie:2": ("Drama,Comedy", 1999, [1, 0.1, 0, 0, 0, 0, 0, 0]),
    "movie:3": ("Drama", 1985, QUERY),
    "movie:4": ("Comedy", 1995, QUERY),
    "movie:5": ("Drama", 1990, [1, 1, 0, 0, 0, 0, 0, 0]),
    "movie:6": ("Drama", 2000, [0, 1, 0, 0, 0, 0, 0, 1]),
    "movie:7": ("Drama", 2005, QUERY),
    "movie:8": ("Thriller,Drama", 2000, [2, 0, 0, 0, 0, 0, 1, 1]),
}
# Cosine distances to QUERY among the filtered movies: 2 -> 0.005, 8 -> 0.184,
# 5 -> 0.293, 1 -> 0.423, 6 -> 1.0.
EXPECTED_NEIGHBOURS = ["movie:2", "movie:8", "movie:5"]


def _listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) listening on ``port``."""
    addresses = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                addresses.append(address)
    return addresses


@pytest.mark.integration
def test_filtered_knn_then_clean_stop(run_dir: Path) -> None:
    url = start(run_dir, 0, persist=False)
    state = read_state(run_dir)
    assert state is not None and state.url == url

    client = redis.Redis.from_url(url)
    client.execute_command(
        "FT.CREATE",
        "idx:movies",
        "ON",
        "HASH",
        "PREFIX",
        "1",
        "movie:",
        "SCHEMA",
        "genres",
        "TAG",
        "year",
        "NUMERIC",
        "embedding",
        "VECTOR",
        "HNSW",
        "6",
        "TYPE",
        "FLOAT32",
        "DIM",
        str(DIM),
        "DISTANCE_METRIC",
        "COSINE",
    )
    for key, (genres, year, vector) in MOVIES.items():
        client.hset(
            key,
            mapping={
                "genres": genres,
                "year": year,
                "embedding": np.asarray(vector, dtype=np.float32).tobytes(),
            },
        )
    reply = client.execute_command(
        "FT.SEARCH",
        "idx:movies",
        "(@genres:{Drama} @year:[1990 2000])=>[KNN 3 @embedding $vec AS score]",
        "PARAMS",
        "2",
        "vec",
        np.asarray(QUERY, dtype=np.float32).tobytes(),
        "SORTBY",
        "score",
        "RETURN",
        "1",
        "score",
        "DIALECT",
        "2",
    )
    client.close()
    keys = [key.decode() for key in reply[1::2]]
    scores = [float(dict(zip(f[::2], f[1::2], strict=True))[b"score"]) for f in reply[2::2]]

    query = np.asarray(QUERY, dtype=np.float64)
    distances = {
        key: 1 - float(np.dot(vec, query) / (np.linalg.norm(vec) * np.linalg.norm(query)))
        for key, (genres, year, vec) in MOVIES.items()
        if "Drama" in genres.split(",") and 1990 <= year <= 2000
    }
    by_distance = sorted(distances, key=distances.__getitem__)[:3]
    assert by_distance == EXPECTED_NEIGHBOURS
    assert reply[0] == 3
    assert keys == EXPECTED_NEIGHBOURS
    assert scores == pytest.approx([distances[k] for k in keys], abs=1e-5)

    assert stop(run_dir) is True
    with pytest.raises(ProcessLookupError):
        os.kill(state.pid, 0)  # exited and reaped
    assert can_bind(state.port)
    paths = RedisPaths.for_run_dir(run_dir)
    assert not paths.state_file.exists() and not paths.password_file.exists()


@pytest.mark.integration
def test_loopback_only_password_required_private_files(run_dir: Path) -> None:
    url = start(run_dir, 0, persist=False)
    state = read_state(run_dir)
    assert state is not None

    assert _listening_addresses(state.port) == ["0100007F"]  # 127.0.0.1, no IPv6
    with socket.create_connection((HOST, state.port), timeout=5) as anonymous:
        anonymous.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert anonymous.recv(256).startswith(b"-NOAUTH ")
    intruder = redis.Redis(
        host=HOST, port=state.port, password="wrong", retry=Retry(NoBackoff(), 0)
    )
    with intruder, pytest.raises(redis.AuthenticationError):
        intruder.ping()
    with redis.Redis.from_url(url) as client:
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        assert client.config_get("bind") == {"bind": HOST}

    paths = RedisPaths.for_run_dir(run_dir)
    password = paths.password_file.read_text().strip()
    assert len(password) >= 64 and password in url
    assert stat.S_IMODE(paths.root.stat().st_mode) == 0o700
    for private in (paths.password_file, paths.state_file, paths.conf_file):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
    assert password not in paths.log_file.read_text()
    assert password not in " ".join(Path(f"/proc/{state.pid}/cmdline").read_text().split("\0"))
    assert password not in status(run_dir).masked_url  # type: ignore[operator]


@pytest.mark.integration
def test_explicit_port_taken_is_refused_naming_it(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"port {port}\b"):
            start(tmp_path, port, persist=False)
    assert read_state(tmp_path) is None


@pytest.mark.integration
def test_port_lost_after_the_check_is_reported_as_port_in_use(tmp_path: Path) -> None:
    """The race window: redis-server itself fails to bind; its log tells why."""
    paths = RedisPaths.for_run_dir(tmp_path)
    paths.ensure()
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(PortInUseError) as caught:
            launch(find_binaries(), paths, port, persist=False, timeout=10)
    assert caught.value.port == port
    assert not paths.password_file.exists() and not paths.conf_file.exists()


@pytest.mark.integration
def test_default_port_picks_a_free_one(tmp_path: Path) -> None:
    with embedded_redis(tmp_path / "a") as first, embedded_redis(tmp_path / "b") as second:
        ports = {read_state(tmp_path / name).port for name in "ab"}  # type: ignore[union-attr]
        assert len(ports) == 2 and 6379 not in ports
        assert first != second
        for url in (first, second):
            with redis.Redis.from_url(url) as client:
                assert client.execute_command("FT._LIST") == []


@pytest.mark.integration
def test_explicit_free_port_is_used(run_dir: Path) -> None:
    port = pick_free_port()
    url = start(run_dir, port, persist=False)
    assert url.endswith(f"@{HOST}:{port}/0")


@pytest.mark.integration
def test_start_twice_is_idempotent_and_stop_twice_is_a_noop(run_dir: Path) -> None:
    first = start(run_dir, 0, persist=False)
    pid = read_state(run_dir).pid  # type: ignore[union-attr]
    assert start(run_dir, 0, persist=False) == first
    assert read_state(run_dir).pid == pid  # type: ignore[union-attr]
    assert status(run_dir).healthy
    assert stop(run_dir) is True
    assert stop(run_dir) is False
    assert not status(run_dir).running


@pytest.mark.integration
def test_stale_state_of_a_dead_server_is_replaced(run_dir: Path) -> None:
    first = start(run_dir, 0, persist=False)
    state = read_state(run_dir)
    assert state is not None
    paths = RedisPaths.for_run_dir(run_dir)
    saved = paths.state_file.read_text()
    stop(run_dir)
    paths.state_file.write_text(saved)  # as if the machine had rebooted
    assert "stale" in status(run_dir).detail
    second = start(run_dir, 0, persist=False)
    assert second != first
    assert read_state(run_dir).pid != state.pid  # type: ignore[union-attr]


@pytest.mark.integration
def test_fixture_gives_an_empty_redis_with_search(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0
    assert redis_client.execute_command("FT._LIST") == []


@pytest.mark.integration
def test_state_file_is_valid_json(run_dir: Path) -> None:
    start(run_dir, 0, persist=False)
    raw = json.loads(RedisPaths.for_run_dir(run_dir).state_file.read_text())
    assert set(raw) >= {"url", "pid", "port", "host"}


@pytest.mark.integration
def test_stop_falls_back_to_signals_when_shutdown_is_refused(run_dir: Path) -> None:
    start(run_dir, 0, persist=False)
    state = read_state(run_dir)
    assert state is not None
    paths = RedisPaths.for_run_dir(run_dir)
    wrong = json.loads(paths.state_file.read_text())
    wrong["url"] = f"redis://:not-the-password@{HOST}:{state.port}/0"
    paths.state_file.write_text(json.dumps(wrong))
    assert stop(run_dir) is True
    with pytest.raises(ProcessLookupError):
        os.kill(state.pid, 0)
    assert "Received SIGTERM" in paths.log_file.read_text()


@pytest.mark.integration
def test_server_without_state_file_blocks_start_until_stopped(run_dir: Path) -> None:
    start(run_dir, 0, persist=False)
    state = read_state(run_dir)
    assert state is not None
    RedisPaths.for_run_dir(run_dir).state_file.unlink()
    with pytest.raises(RedisServerError, match="state file is missing"):
        start(run_dir, 0, persist=False)
    assert stop(run_dir) is True  # found through redis-server's own pidfile
    assert not pid_alive(state.pid)


def test_a_snapshot_survives_a_crash_and_a_restart_on_a_new_port(run_dir: Path) -> None:
    url = start(run_dir, 0, persist=True)
    client = redis.Redis.from_url(url)
    client.hset("movie:1", mapping={"title": "Toy Story"})
    client.close()
    assert save_snapshot(url)
    state = read_state(run_dir)
    assert state is not None
    os.kill(state.pid, 9)  # a crash: no SHUTDOWN, no final save
    time.sleep(0.5)
    again = start(run_dir, 0, persist=True)
    assert again != url  # fresh password (and port) at every start
    client = redis.Redis.from_url(again)
    try:
        assert client.hget("movie:1", "title") == b"Toy Story"
    finally:
        client.close()
