"""Features deployment: the user's online features (Feast, Redis), `FeaturesStage`.

A thin wrapper around the features runtime (`models.features.runtime.OnlineFeatures`: a
long-lived FeatureStore, its registry and Redis client per replica), held by a
`RedisResource` that reconnects after Redis restarts. Candidate movies' features are read by
the Ranking stage itself (same runtime), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

import redis.asyncio
from ray import serve

from deployments.common import StageUnavailableError, health_payload
from deployments.config import FeaturesSettings, ServingContext
from deployments.faults import FaultInjector
from deployments.redis_resource import RedisResource, fail_fast
from movierec.payloads import UserProfile

if TYPE_CHECKING:  # Feast loads in the replica, not where the app is built
    from models.features.runtime import OnlineFeatures

logger = logging.getLogger(__name__)


@serve.deployment
class Features:
    """The user's online features, liked and seen movies (implements `FeaturesStage`)."""

    def __init__(self, context: ServingContext) -> None:
        """Opens the feature store lazily (a missing registry, Redis or data makes the stage
        unavailable, not the replica crash; the next call retries)."""
        self._registry = context.layout.features_dir / "registry.db"
        self._project = context.layout.feast_project
        self._settings = FeaturesSettings()
        self._store = online_features(context)
        self._faults = FaultInjector("features")

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`FeaturesSettings`); at replica start it also opens
        the store (on the replica's event loop), so the first request is not slow."""
        settings = FeaturesSettings.model_validate(config or {})
        self._faults.configure(settings.faults)
        self._settings = settings
        with contextlib.suppress(StageUnavailableError):  # unavailable: retried on the next call
            await self._store.get()

    async def user(self, user_id: int) -> UserProfile | None:
        """The user's ranker features, liked and seen movies, in one Feast read.

        Returns:
            The profile (feature values None where missing); None for a user the store
            does not know (no feature row at all: cold start).

        Raises:
            StageUnavailableError: Redis cannot be reached (or lost its data).
        """
        await self._faults.apply("user")
        async with self._store.use() as reader:
            return await reader.user_profile(user_id)

    async def health(self) -> dict[str, Any]:
        """Stage health: the store is open and Redis answers a one-user read."""
        _, problem = await self._store.probe(one_user_read)
        if problem is not None:
            return health_payload("unavailable", registry=str(self._registry), error=problem)
        return health_payload(
            "ok",
            project=self._project,
            reconnects=self._store.reconnects,
            faults=self._faults.describe(),
        )

    async def check_health(self) -> None:
        """Serve's periodic check: also reconnects after a Redis restart with no traffic.

        Raises:
            RuntimeError: This replica failed to read from a Redis that a fresh connection
                reads fine, several checks in a row (Serve then replaces it).
        """
        await self._store.check_health(one_user_read)

    def pid(self) -> int:
        """The replica's process id."""
        return os.getpid()


def online_features(context: ServingContext) -> RedisResource[OnlineFeatures]:
    """A replica's features runtime on the current Redis, reconnecting (the Features
    stage's, and the Content stage's, which reads the user's history itself).

    A build needs the tree's Feast registry and Redis holding its materialized features
    (the loader's mark); it warms the reader up (the first read builds Feast's serializers
    and the async Redis client).
    """
    registry = context.layout.features_dir / "registry.db"
    project = context.layout.feast_project
    version_key = context.layout.features_version_key

    async def loaded(client: redis.asyncio.Redis) -> bool:
        return bool(await client.exists(version_key))

    async def open_reader(url: str) -> OnlineFeatures:
        from models.features.runtime import OnlineFeatures

        if not registry.exists():
            raise FileNotFoundError(f"no Feast registry at {registry}")
        reader = await asyncio.to_thread(OnlineFeatures.open, url, registry, project)
        # Feast's async Redis client, made now to fail fast (it is created on first use).
        online_store: Any = reader.store._get_provider().online_store
        fail_fast(await online_store._get_client_async(reader.store.config.online_store))
        await one_user_read(reader)  # also builds Feast's serializers
        return reader

    return RedisResource(
        "feature store",
        context.resolve_redis_url,
        open_reader,
        loaded,
        missing="the online store is empty (Redis restarted without its data?): run the loader",
    )


async def one_user_read(reader: OnlineFeatures) -> None:
    """One Feast read of a user (features and history): the warm-up and the probe."""
    await reader.user_profile(0)
