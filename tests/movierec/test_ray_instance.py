"""This project's Ray head: what it records, which processes it counts as its own, and a stop
with nothing recorded (pure logic; `test_ray_instance_e2e.py` starts real ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from movierec import ray_instance
from movierec.ray_instance import Instance, belongs, read_state, state_path

SESSION = "/tmp/ray/session_2026-12-01_20-24-14_017075_13111"


@pytest.mark.parametrize(
    ("cmdline", "ours"),
    [
        (["gcs_server", f"--log_dir={SESSION}/logs", "--gcs_server_port=26379"], True),
        (["raylet", f"--raylet_socket_name={SESSION}/sockets/raylet"], True),
        (["python", "-m", "ray.util.client.server", "--address=192.0.2.2:26379"], True),
        (["python", "default_worker.py", "--gcs-address=127.0.0.1:26379"], True),
        (["gcs_server", "--gcs_server_port=6379", "--log_dir=/tmp/ray/session_other/logs"], False),
        (["python", "default_worker.py", "--gcs-address=127.0.0.1:263790"], False),
        (["python", "worker.py", "--gcs-address=127.0.0.1:6379"], False),
        (["redis-server", "127.0.0.1:26379"], False),
    ],
)
def test_a_process_is_ours_by_its_session_or_gcs_port(cmdline: list[str], ours: bool) -> None:
    assert belongs(cmdline, 26379, SESSION) is ours


def test_the_state_round_trips_and_garbage_is_no_state(tmp_path: Path) -> None:
    assert read_state(tmp_path) is None
    instance = Instance(
        "127.0.0.1:26379", SESSION, "http://127.0.0.1:8265", [[1, 2.0]], guard="abc"
    )
    ray_instance._write_state(tmp_path, instance)
    assert read_state(tmp_path) == instance
    assert instance.gcs_port == 26379
    assert instance.env() == {
        "RAY_ADDRESS": "127.0.0.1:26379",
        "RAY_DASHBOARD_ADDRESS": "http://127.0.0.1:8265",
    }
    state_path(tmp_path).write_text("{not json")
    assert read_state(tmp_path) is None


def test_a_recorded_pid_reused_by_another_process_is_not_ours() -> None:
    import os

    import psutil

    me = psutil.Process(os.getpid())
    same = Instance("127.0.0.1:1", "", "", [[me.pid, me.create_time()]])
    reused = Instance("127.0.0.1:1", "", "", [[me.pid, me.create_time() - 100]])
    assert ray_instance._recorded(same) == [me]
    assert ray_instance._recorded(reused) == []


def test_stop_with_nothing_recorded_signals_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be signalled")

    monkeypatch.setattr(ray_instance, "terminate", refuse)
    assert ray_instance.stop(tmp_path) == []
    assert ray_instance.main(["--run-dir", str(tmp_path), "stop"]) == 0
    assert ray_instance.main(["--run-dir", str(tmp_path), "status"]) == 1
    assert ray_instance.main(["--run-dir", str(tmp_path), "env"]) == 1
