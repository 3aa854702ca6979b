"""Retrieval deployment: the two-tower SavedModel, a user in, the top-N movies out.

The SavedModel (`retrieval/saved_model`, written by `models.retrieval.export`) is loaded with
`tf.saved_model.load` at replica start (no TF Serving) and does an exact dot-product top-K
over the whole catalog. Its user tower takes the user id plus side features (age, gender,
occupation, zip code); the replica keeps those in memory (see `UserSideFeatures`), so the
Controller can call Retrieval and Features concurrently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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

logger = logging.getLogger(__name__)

USERS_FILE = "users.parquet"
"""Optional `retrieval/users.parquet` (user_id, age, gender, occupation, zip_code): the side
features the model was trained with. Preferred over the Feast demographics source."""

RELOAD_RETRY_S = 30.0
"""A model that failed to load (e.g. not built yet) is retried at most this often."""

_DEMOGRAPHICS_FILE = "user_demographics.parquet"
_FEATURE_COLUMNS = ("age", "gender", "occupation", "zip_code")


def _plain(value: Any) -> Any:
    """None for missing values; integral floats (ages read from a nullable column) as int."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class UserSideFeatures:
    """User id -> the retrieval model's side features, held in memory."""

    def __init__(self, frame: pd.DataFrame | None, source: str = "none") -> None:
        """Builds the table from columns user_id and any of age/gender/occupation/zip_code."""
        self.source = source
        self._rows: dict[int, dict[str, Any]] = {}
        if frame is None or frame.empty:
            return
        columns = [c for c in _FEATURE_COLUMNS if c in frame.columns]
        records = frame[["user_id", *columns]].to_dict("records")
        for record in records:
            user_id = int(record.pop("user_id"))
            self._rows[user_id] = {str(k): _plain(v) for k, v in record.items()}

    def __len__(self) -> int:
        return len(self._rows)

    def features(self, user_id: int) -> dict[str, list[Any]]:
        """Signature side features of one user ({} when unknown: the model's defaults)."""
        row = self._rows.get(user_id)
        return {} if row is None else {k: [v] for k, v in row.items()}

    @classmethod
    def load(cls, retrieval_dir: Path, features_dir: Path) -> UserSideFeatures:
        """Reads `retrieval/users.parquet`, else the Feast demographics source, else nothing."""
        own = retrieval_dir / USERS_FILE
        if own.exists():
            return cls(pd.read_parquet(own), str(own))
        demographics = features_dir / _DEMOGRAPHICS_FILE
        if demographics.exists():
            frame = pd.read_parquet(demographics)
            if "event_timestamp" in frame.columns:
                frame = frame.sort_values("event_timestamp").drop_duplicates("user_id", keep="last")
            frame = frame.rename(columns=lambda c: c.removeprefix("user_") if c != "user_id" else c)
            return cls(frame, str(demographics))
        return cls(None)


@serve.deployment(
    ray_actor_options={"num_cpus": 0.25},
    max_ongoing_requests=16,
    health_check_period_s=10,
    health_check_timeout_s=30,
)
class Retrieval:
    """Two-tower retrieval over the whole catalog."""

    def __init__(
        self, context: ServingContext, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> None:
        """Loads the SavedModel and the user side features, then warms the model up.

        Args:
            context: The artifacts tree and Redis.
            intra_op_threads: TensorFlow threads inside one op.
            inter_op_threads: TensorFlow ops run concurrently.
        """
        self._settings = RetrievalSettings()
        self._retriever: Any = None
        self._users = UserSideFeatures(None)
        self._error: str | None = None
        self._failed_at = float("-inf")
        self._load_lock = threading.Lock()
        self._load_seconds = 0.0
        self._threads = (intra_op_threads, inter_op_threads)
        self._layout = context.layout
        self._artifacts = ""
        self._model_version: str | None = None  # the user_config label last applied
        self._faults = FaultInjector("retrieval")
        prepare_tensorflow(intra_op_threads, inter_op_threads)
        self._load()

    def _load(self) -> None:
        """Loads the model (a failure leaves the stage unavailable; retried later)."""
        from models.retrieval.serving import Retriever

        started = time.perf_counter()
        layout = self._layout
        try:
            retriever = Retriever(layout.retrieval_dir)
            users = UserSideFeatures.load(layout.retrieval_dir, layout.features_dir)
            retriever.recommend([0], users.features(0), k=1)  # warm-up
        except Exception as exc:  # the replica stays up and reports itself unavailable
            self._error = describe(exc)
            self._failed_at = time.monotonic()
            logger.error("retrieval model not loaded from %s: %s", layout.retrieval_dir, exc)
            return
        # One assignment each: requests in flight keep the model they started with.
        self._retriever, self._users, self._error = retriever, users, None
        self._artifacts = layout.root.resolve().name
        self._load_seconds = time.perf_counter() - started
        logger.info("retrieval model loaded from %s", self._artifacts)

    def _ensure_loaded(self) -> bool:
        """Whether the model is loaded; retries a failed load every `RELOAD_RETRY_S`."""
        if self._retriever is not None:
            return True
        with self._load_lock:
            if self._retriever is None and time.monotonic() - self._failed_at > RELOAD_RETRY_S:
                self._load()
        return self._retriever is not None

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`RetrievalSettings`). A new `model_version` reloads
        the model from the artifacts tree in a thread while the current one keeps serving,
        then swaps it in (a failed load keeps the current model)."""
        settings = RetrievalSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        previous, self._model_version = self._model_version, settings.model_version
        if previous is not None and previous != settings.model_version:
            logger.info("model_version %r -> %r: reloading", previous, settings.model_version)
            await asyncio.to_thread(self._load)

    async def recommend(self, user_id: int, n: int) -> tuple[list[int], list[float]]:
        """The user's top-`n` movies by model score, best first (seen ones included).

        The query runs on the replica's event loop: one user's top-K takes about a
        millisecond, less than handing it to a worker thread and back (what Serve does with
        a sync method). Only a (re)load of the model goes to a thread.

        Raises:
            StageUnavailableError: The model is not loaded.
        """
        await self._faults.apply("recommend")
        if self._retriever is None and not await asyncio.to_thread(self._ensure_loaded):
            raise StageUnavailableError(f"retrieval model unavailable: {self._error}")
        k = max(1, min(int(n), self._settings.max_n, self._retriever.k))
        ids, scores = self._retriever.recommend([user_id], self._users.features(user_id), k=k)
        return ids[0].astype(np.int64).tolist(), scores[0].astype(np.float64).tolist()

    def health(self) -> dict[str, Any]:
        """Stage health (cheap: no model call)."""
        if not self._ensure_loaded():
            return health_payload("unavailable", error=self._error)
        return health_payload(
            "ok",
            k=self._retriever.k,
            model_version=self._model_version,
            artifacts=self._artifacts,
            faults=self._faults.describe(),
            user_features=self._users.source,
            known_users=len(self._users),
            load_seconds=round(self._load_seconds, 2),
            tf_threads=list(self._threads),
            max_n=self._settings.max_n,
        )

    async def check_health(self) -> None:
        """Serve's periodic check: a loaded model must still answer a one-user query
        (`probe_model`: a broken one makes Serve replace the replica)."""
        retriever, users = self._retriever, self._users
        await probe_model(
            "retrieval model",
            None if retriever is None else lambda: retriever.recommend([0], users.features(0), 1),
        )

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()
