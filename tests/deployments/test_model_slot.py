"""`ModelSlot`: load, retry a failed load, reload on a new model_version, keep the old model."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from deployments.common import StageUnavailableError
from deployments.model_slot import ModelSlot
from movierec.layout import ArtifactLayout
from movierec.storage import ArtifactSource


class Loader:
    """Answers the next scripted result per call: a model (str) or an exception."""

    def __init__(self, *results: str | Exception) -> None:
        self.results = list(results)
        self.calls = 0
        self.gate: threading.Event | None = None  # set: the load waits for it

    def __call__(self, layout: ArtifactLayout) -> str:
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        result = self.results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result


@pytest.fixture
def layout(tmp_path: Path) -> ArtifactSource:
    built = tmp_path / "ml-100k" / "eval.build-1a2b"
    built.mkdir(parents=True)
    (tmp_path / "ml-100k" / "eval").symlink_to(built.name)  # the live tree: a symlink
    return ArtifactSource(tmp_path, "ml-100k", "eval")  # local: model_version is a label


def test_load_reports_the_resolved_tree(layout: ArtifactSource) -> None:
    slot = ModelSlot("model", layout, Loader("v1"))
    assert slot.current is None
    assert slot.load() is True
    assert slot.current == "v1" and slot.error is None
    assert slot.artifacts == "eval.build-1a2b"
    described = slot.describe()
    assert set(described) == {"model_version", "artifacts", "load_seconds", "error"}
    assert described["model_version"] is None and described["load_seconds"] >= 0.0


def test_a_failed_load_is_retried_at_most_every_retry_s(layout: ArtifactSource) -> None:
    loader = Loader(FileNotFoundError("no saved_model"), "v1")
    slot = ModelSlot("model", layout, loader, retry_s=3600.0)
    assert slot.load() is False
    assert slot.current is None and slot.error == "FileNotFoundError: no saved_model"
    assert slot.ensure_loaded() is False and loader.calls == 1  # too early: no retry
    with pytest.raises(StageUnavailableError, match="model unavailable: FileNotFoundError"):
        asyncio.run(slot.get())
    assert loader.calls == 1
    slot._retry_s = 0.0  # the retry is due
    assert asyncio.run(slot.get()) == "v1"
    assert loader.calls == 2 and slot.error is None
    assert slot.ensure_loaded() is True and loader.calls == 2  # loaded: never reloads


def test_a_new_model_version_reloads_while_the_old_model_serves(layout: ArtifactSource) -> None:
    loader = Loader("v1", "v2", RuntimeError("corrupt"))
    slot = ModelSlot("model", layout, loader)
    slot.load()

    async def scenario() -> None:
        await slot.set_version("a")  # the first label applied: no reload
        assert loader.calls == 1 and slot.model_version == "a"
        await slot.set_version("a")  # unchanged: no reload
        assert loader.calls == 1
        loader.gate = threading.Event()
        reload = asyncio.ensure_future(slot.set_version("b"))
        for _ in range(100):  # the reload runs in a thread, the loop keeps serving
            await asyncio.sleep(0.01)
            if loader.calls == 2:
                break
        assert loader.calls == 2 and not reload.done()
        assert await slot.get() == "v1"
        loader.gate.set()
        await reload
        assert await slot.get() == "v2" and slot.model_version == "b"
        loader.gate = None
        await slot.set_version("c")  # a failed reload keeps the current model
        assert await slot.get() == "v2" and slot.error == "RuntimeError: corrupt"
        assert slot.describe()["model_version"] == "c"

    asyncio.run(scenario())


@pytest.mark.integration
def test_a_store_slot_loads_the_build_model_version_names(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    """With an object store, "" is CURRENT's build, another version a published build id
    (pinned from the first user_config on); an unknown one keeps the current model."""
    from movierec.storage import ObjectStore

    uri = s3_env["MOVIEREC_STORAGE_URI"]
    store = ObjectStore(uri)
    for build in ("b1", "b2"):
        (tmp_path / build / "ranking").mkdir(parents=True)
        (tmp_path / build / "ranking" / "inputs.json").write_text(build)
        store.publish(tmp_path / build, "ml-100k", "eval", build)
    source = ArtifactSource(tmp_path, "ml-100k", "eval", uri, cache_dir=tmp_path / "cache")

    def read(layout: ArtifactLayout) -> str:
        return (layout.ranking_dir / "inputs.json").read_text()

    slot = ModelSlot("model", source, read)
    assert slot.load() and slot.current == "b2" and slot.artifacts == "b2"

    async def scenario() -> None:
        await slot.set_version("b1")  # the first user_config pins another build: loaded
        assert await slot.get() == "b1" and slot.artifacts == "b1"
        await slot.set_version("b9")
        assert await slot.get() == "b1" and "no build 'b9' was published" in str(slot.error)
        described = slot.describe()
        assert described["artifacts"] == "b1" and described["storage"]["uri"] == uri
        assert described["storage"]["downloads"] == 2

    asyncio.run(scenario())
