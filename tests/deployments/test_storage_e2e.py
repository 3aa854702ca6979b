"""The app served from the object store: real Ray Serve, real Redis, the local S3 server.

The tiny build is first served from the local tree; the same build, published to the local
S3 server (credentials checked), is then served through `storage_uri` and must answer
exactly the same. A second build is published and rolled out under load by pinning its id
as `model_version` (no failed request); a missing build keeps the current one serving and
shows in `/healthz`; a restarted replica reuses its cached build instead of downloading it.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from movierec.s3_server import LocalS3
from movierec.storage import ObjectStore
from tests.deployments._load import LoadLoop
from tests.deployments._load import report as _report
from tests.deployments._replicas import replicas, wait_replaced
from tests.deployments._serve import Served, deploy, serve_tiny_app, with_options

pytestmark = pytest.mark.integration

USERS = list(range(1, 41))
MODELS = ("Retrieval", "Ranking")


def _answers(served: Served) -> dict[int, list[tuple[int, float]]]:
    out = {}
    for user in USERS[:20]:
        response = served.get(f"/recommendations/{user}", k=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body["degraded"], body["fallbacks"]
        out[user] = [(item["movie_id"], round(item["score"], 5)) for item in body["items"]]
    return out


def _stages(served: Served) -> dict[str, Any]:
    response = served.get("/healthz")
    assert response.status_code == 200, response.text
    return dict(response.json()["stages"])


def _wait(predicate: Any, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.5)


def _pinned(config: dict[str, Any], version: str) -> dict[str, Any]:
    out = config
    for name in MODELS:
        out = with_options(out, name, user_config={"model_version": version})
    return out


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, local_s3: LocalS3
) -> Iterator[tuple[Served, ObjectStore]]:
    env = local_s3.env(prefix="e2e")
    uri = env.pop("MOVIEREC_STORAGE_URI")
    with serve_tiny_app(tmp_path_factory, env_vars=env) as app:
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # this process publishes with the same AWS chain
        try:
            yield app, ObjectStore(uri, local_s3.endpoint_url)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_served_from_the_store_answers_like_the_local_tree(
    served: tuple[Served, ObjectStore],
) -> None:
    app, store = served
    layout = app.artifacts.layout
    local = _answers(app)
    store.publish(layout.root, layout.variant, layout.mode, "build-a")
    config = copy.deepcopy(app.config)
    config["applications"][0]["args"]["storage_uri"] = store.uri
    deploy(config)  # new args: every replica restarts on the store's CURRENT build
    app.config = config
    stages = _stages(app)
    for stage in ("retrieval", "ranking"):
        detail = stages[stage]["detail"]
        assert detail["artifacts"] == "build-a", detail
        assert detail["storage"]["uri"] == store.uri
        assert detail["storage"]["downloads"] + detail["storage"]["cache_hits"] >= 1
    assert _answers(app) == local


def test_swap_to_a_second_build_under_load_then_restart_reuses_the_cache(
    served: tuple[Served, ObjectStore], tmp_path: Path
) -> None:
    from tests.deployments._ranker import export_tiny_ranker

    app, store = served
    layout = app.artifacts.layout
    second = tmp_path / "build-b"
    shutil.copytree(layout.root.resolve(), second, symlinks=True)
    shutil.rmtree(second / "ranking")
    export_tiny_ranker(second / "ranking", seed=7)
    store.publish(second, layout.variant, layout.mode, "build-b")
    assert store.builds(layout.variant, layout.mode) == ["build-a", "build-b"]
    rollout = _pinned(app.config, "build-b")

    def swapped() -> bool:
        stages = _stages(app)
        return all(stages[s]["detail"]["artifacts"] == "build-b" for s in ("retrieval", "ranking"))

    with LoadLoop(app.base_url, USERS, concurrency=4, max_seconds=150) as load:
        time.sleep(1.0)
        began = time.perf_counter()
        deploy(rollout)
        _wait(swapped, 120, "the replicas did not load build-b from the store")
        done = time.perf_counter()
        time.sleep(1.0)
        load.stop()
    _report("model swap from the store under load", load.outcomes, rollout_s=done - began)
    assert load.outcomes and not load.failed(), Counter(o.status for o in load.failed())
    app.config = rollout

    # A missing build: the replicas keep serving build-b and say why in /healthz.
    deploy(_pinned(app.config, "no-such-build"))
    stages = _stages(app)
    for stage in ("retrieval", "ranking"):
        detail = stages[stage]["detail"]
        assert detail["artifacts"] == "build-b" and detail["model_version"] == "no-such-build"
        assert "no build 'no-such-build' was published" in detail["error"]
        assert store.uri in detail["error"]
    assert app.get("/recommendations/3", k=10).status_code == 200
    deploy(app.config)

    # A restarted replica finds build-b in its node's cache: checked, not downloaded.
    victim = next(iter(replicas("Retrieval")))
    os.kill(victim, signal.SIGKILL)
    wait_replaced("Retrieval", {victim}, 1)
    _wait(lambda: _stages(app)["retrieval"]["status"] == "ok", 120, "Retrieval not back")
    detail = _stages(app)["retrieval"]["detail"]
    assert detail["artifacts"] == "build-b"
    assert detail["storage"]["downloads"] == 0 and detail["storage"]["cache_hits"] >= 1
