"""Retrieval deployment: the two-tower model, a user in, the top-N movies out; and the
item-to-item source (candidate source `itemcf`) of the same tree, both answered by one call.

A thin Serve wrapper around `models.retrieval.runtime.RetrievalRuntime` (the SavedModel of
`retrieval/`, loaded with `tf.saved_model.load` at replica start, no TF Serving, doing an
exact dot-product top-K over the whole catalog, plus the users' side features held in
memory, so the Controller can call Retrieval and Features concurrently). The replica's
`ModelSlot` reloads it when `model_version` changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from ray import serve

from deployments.common import (
    StageUnavailableError,
    describe,
    health_payload,
    prepare_tensorflow,
    probe_model,
)
from deployments.config import RetrievalSettings, ServingContext
from deployments.faults import FaultInjector
from deployments.features import online_features
from deployments.model_slot import ModelSlot
from movierec.layout import ArtifactLayout
from movierec.payloads import RetrievalCandidates

if TYPE_CHECKING:
    from models.retrieval.runtime import RetrievalRuntime

logger = logging.getLogger(__name__)


@serve.deployment
class Retrieval:
    """Two-tower retrieval over the whole catalog (`deployments.stages.RetrievalStage`).

    A user the model does not know (not in its users table) who has liked movies in the online
    store (posted as events) is answered from the mean of those movies' embeddings instead of
    the model's out-of-vocabulary bucket (`models.retrieval.liked`), and the item-to-item
    source scores every movie they rated or watched (`ItemCFRuntime.from_history`)."""

    def __init__(
        self, context: ServingContext, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> None:
        """Loads the SavedModel and the user side features, then warms the model up; a
        model that cannot be loaded leaves the stage unavailable (retried later).

        Args:
            context: The artifacts tree and Redis.
            intra_op_threads: TensorFlow threads inside one op.
            inter_op_threads: TensorFlow ops run concurrently.
        """
        self._settings = RetrievalSettings()
        self._threads = (intra_op_threads, inter_op_threads)
        self._faults = FaultInjector("retrieval")
        prepare_tensorflow(intra_op_threads, inter_op_threads)
        self._model: ModelSlot[RetrievalRuntime] = ModelSlot(
            "retrieval model", context.artifacts, self._load
        )
        self._model.load()
        # Users the model does not know are answered from their liked movies (online store).
        self._history = online_features(context)

    def _load(self, layout: ArtifactLayout) -> RetrievalRuntime:
        from models.retrieval.runtime import RetrievalRuntime

        return RetrievalRuntime.load(layout, *self._threads)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`RetrievalSettings`). A new `model_version` reloads
        the model from the artifacts tree in a thread while the current one keeps serving,
        then swaps it in (a failed load keeps the current model)."""
        settings = RetrievalSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        await self._model.set_version(settings.model_version)
        with contextlib.suppress(StageUnavailableError):  # opened now, not on a user's call
            await self._history.get()

    async def candidates(self, user_id: int, n: int, itemcf_n: int = 0) -> RetrievalCandidates:
        """Both sources of this deployment in one call (`n` and `itemcf_n` clipped to
        `max_n`): the user's top-`n` movies by model score, seen ones included (clipped to
        the exported K), and the top-`itemcf_n` unseen movies of the item-to-item source
        (empty when the artifacts tree has no such source). A user the models do not know is
        answered from their online history: the two-tower query from their liked movies, the
        item-to-item scores from every movie they rated or watched (the model's answer
        without such history); `itemcf_history: online` scores known users' item-to-item
        lists from it too.

        Both queries run on the replica's event loop: one user's top-K takes about a
        millisecond and the item-to-item row product microseconds, less than handing them to
        a worker thread and back. Only a (re)load of the models goes to a thread.

        Raises:
            StageUnavailableError: The models are not loaded.
        """
        await self._faults.apply("candidates")
        runtime = await self._model.get()
        n, itemcf_n = (min(int(v), self._settings.max_n) for v in (n, itemcf_n))
        unknown = bool(len(runtime.users)) and user_id not in runtime.users
        online_itemcf = unknown or self._settings.itemcf_history == "online"
        reads = (unknown and n > 0) or (
            online_itemcf and itemcf_n > 0 and runtime.itemcf is not None
        )
        liked, seen = await self._online_history(user_id) if reads else ((), frozenset())
        if unknown and liked and runtime.liked is not None and n > 0:
            top = runtime.liked.candidates(liked, min(n, runtime.k))
        else:
            top = runtime.candidates(user_id, n)
        if seen and runtime.itemcf is not None:
            return RetrievalCandidates(top, runtime.itemcf.from_history(seen, itemcf_n))
        return RetrievalCandidates(top, runtime.related(user_id, itemcf_n))

    async def _online_history(self, user_id: int) -> tuple[tuple[int, ...], frozenset[int]]:
        """A user's (liked, seen) movies from the online store (posted as events: README
        "Real-time feedback"); both empty when the store cannot be read."""
        try:
            # shielded: a call cancelled at its deadline must not cancel the store's opening
            await asyncio.shield(self._history.get())
            async with self._history.use() as reader:
                return await reader.user_history_async(user_id)
        except Exception as exc:
            logger.debug("online history of user %d not read: %s", user_id, describe(exc))
            return (), frozenset()

    async def health(self) -> dict[str, Any]:
        """Stage health (cheap: no model call)."""
        runtime = self._model.current if await self._model.ready() else None
        if runtime is None:
            return health_payload("unavailable", error=self._model.error)
        return health_payload(
            "ok",
            k=runtime.k,
            **self._model.describe(),
            faults=self._faults.describe(),
            user_features=runtime.users.source,
            known_users=len(runtime.users),
            tf_threads=list(self._threads),
            max_n=self._settings.max_n,
            itemcf=None if runtime.itemcf is None else runtime.itemcf.describe(),
        )

    async def check_health(self) -> None:
        """Serve's periodic check: a loaded model must still answer a one-user query
        (`probe_model`: a broken one makes Serve replace the replica)."""
        runtime = self._model.current
        await probe_model(
            "retrieval model", None if runtime is None else lambda: runtime.top_k([0], 1)
        )

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()
