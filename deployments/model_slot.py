"""The model a model-serving replica holds (Retrieval, Ranking): loaded, reloaded, reported.

`ModelSlot` loads a model from the artifacts tree (the local one, or the build of the
object store that `model_version` names, fetched into the local cache: see
`movierec.storage.ArtifactSource`) and keeps it:

* a replica starts even when the model cannot be loaded (not built yet): the stage reports
  itself unavailable, and a later call retries the load, at most every `RELOAD_RETRY_S`;
* a new `model_version` (the deployment's `user_config`) reloads the model in a thread while
  the current one keeps serving, then swaps it in with one assignment (requests in flight
  keep the model they started with); a failed reload (a download from the store included)
  keeps the current model and shows in `describe()` (so in `/healthz`);
* `describe()` is what the stage's `health()` reports of it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from deployments.common import StageUnavailableError, describe
from movierec.layout import ArtifactLayout
from movierec.storage import ArtifactSource

T = TypeVar("T")

logger = logging.getLogger(__name__)

RELOAD_RETRY_S = 30.0
"""A model that failed to load (e.g. not built yet) is retried at most this often."""


class ModelSlot(Generic[T]):
    """One replica's model, loaded by `load(layout)` from the tree `source` gives for the
    current `model_version` (a label for the local tree; a build id, or "" for CURRENT, in
    an object store).

    Attributes:
        name: What the model is called in errors and logs ("retrieval model", "ranker").
        error: Why the last load failed (None after a successful one).
        artifacts: The build the current model came from (the resolved directory name of
            its tree: a versioned build behind the local symlink, or the store's build id).
        load_seconds: How long the current model took to load.
        model_version: The `user_config` label last applied (None before the first).
    """

    def __init__(
        self,
        name: str,
        source: ArtifactSource,
        load: Callable[[ArtifactLayout], T],
        retry_s: float = RELOAD_RETRY_S,
    ) -> None:
        self.name = name
        self._source = source
        self._load_fn = load
        self._retry_s = retry_s
        self._model: T | None = None
        self._lock = threading.Lock()  # one load at a time
        self._retry_lock = threading.Lock()
        self._failed_at = float("-inf")
        self.error: str | None = None
        self.artifacts = ""
        self.load_seconds = 0.0
        self.model_version: str | None = None

    @property
    def current(self) -> T | None:
        """The loaded model, or None (never loads)."""
        return self._model

    def load(self) -> bool:
        """Loads the model now, in the caller's thread; whether it succeeded.

        A failure keeps the current model (if any) and records the error; it never raises.
        """
        started = time.perf_counter()
        version = self.model_version or ""
        with self._lock:
            try:
                layout = self._source.layout(version)
                model = self._load_fn(layout)
            except Exception as exc:  # the replica stays up and reports the error
                self.error = describe(exc)
                self._failed_at = time.monotonic()
                logger.error("%s (version %r) not loaded: %s", self.name, version, self.error)
                return False
            # One assignment: calls in flight keep the model they started with.
            self._model, self.error = model, None
            self.artifacts = layout.root.resolve().name
            self.load_seconds = time.perf_counter() - started
        logger.info("%s loaded from %s", self.name, self.artifacts)
        return True

    def ensure_loaded(self) -> bool:
        """Whether a model is loaded; retries a failed load at most every `retry_s`."""
        if self._model is not None:
            return True
        with self._retry_lock:  # one retry at a time; the others then see it failed
            if self._model is None and time.monotonic() - self._failed_at > self._retry_s:
                self.load()
        return self._model is not None

    async def ready(self) -> bool:
        """`ensure_loaded()` off the event loop (only when a load may be needed)."""
        return self._model is not None or await asyncio.to_thread(self.ensure_loaded)

    async def get(self) -> T:
        """The model; a missing one is loaded (in a thread) if a retry is due.

        Raises:
            StageUnavailableError: No model is loaded.
        """
        await self.ready()
        model = self._model
        if model is None:
            raise StageUnavailableError(f"{self.name} unavailable: {self.error}")
        return model

    async def set_version(self, model_version: str) -> None:
        """Applies the `user_config` label: a change after the first one reloads the model in
        a thread while the current one keeps serving (a failed load keeps it). The first one
        reloads too when it pins a store build other than the one the replica started with."""
        previous, self.model_version = self.model_version, model_version
        if previous is None:
            changed = self._source.pins(model_version) and model_version != self.artifacts
        else:
            changed = previous != model_version
        if changed:
            logger.info("%s: model_version %r -> %r: reloading", self.name, previous, model_version)
            await asyncio.to_thread(self.load)

    def describe(self) -> dict[str, Any]:
        """What `health()` reports: model_version, artifacts (the build serving), load_seconds,
        error (why the last load failed, e.g. a download: the build serving is unchanged),
        and with an object store its URI and this replica's downloads and cache hits."""
        described: dict[str, Any] = {
            "model_version": self.model_version,
            "artifacts": self.artifacts,
            "load_seconds": round(self.load_seconds, 2),
            "error": self.error,
        }
        if self._source.remote:
            store = self._source.store()
            described["storage"] = {
                "uri": store.uri,
                "downloads": store.downloads,
                "cache_hits": store.cache_hits,
            }
        return described
