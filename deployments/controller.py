"""Controller deployment: the Ray Serve ingress that composes the stages into one answer.

The flow lives in `RecommendService` (deployments/service.py) and the HTTP routes in
`create_app()` (deployments/api.py); this deployment wires them to the other deployments'
`DeploymentHandle`s and applies its `user_config` (`ControllerConfig`) in `reconfigure()`.

No `from __future__ import annotations` here: Serve's class-based ingress inspects the class
at runtime.
"""

import logging
from typing import Any

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.api import create_app
from deployments.candidate_check import check_candidates
from deployments.catalog import Catalog
from deployments.config import ControllerConfig, ServingContext
from deployments.impression_log import ImpressionLog
from deployments.observability.backends import RayServeBackend
from deployments.observability.feedback import FeedbackMetrics
from deployments.observability.serving import ServingMetrics
from deployments.security import SecurityPolicy
from deployments.service import Observers, RecommendService, RequestObserver, manifest_version
from deployments.stages import EventsHandle, handles_for

logger = logging.getLogger(__name__)


@serve.deployment
@serve.ingress()
class Controller:
    """HTTP ingress: validation, stage composition, fallbacks, rules, response."""

    def __init__(
        self,
        retrieval: DeploymentHandle,
        content: DeploymentHandle,
        features: DeploymentHandle,
        ranking: DeploymentHandle,
        context: ServingContext,
        events: DeploymentHandle | None = None,
    ) -> None:
        """Loads the catalog and the popularity list into memory.

        Args:
            retrieval: Handle of the `Retrieval` deployment.
            content: Handle of the `Content` deployment.
            features: Handle of the `Features` deployment.
            ranking: Handle of the `Ranking` deployment.
            context: The artifacts tree.
            events: Handle of the `Events` deployment (`POST /events`); None: no such route.
        """
        self._policy = SecurityPolicy.from_settings()  # refuses an insecure production setup
        catalog = Catalog.load(context.layout.catalog_dir)
        self._ranking_dir = context.layout.ranking_dir
        backend = RayServeBackend()
        self._metrics = ServingMetrics(backend, catalog)
        self._feedback = FeedbackMetrics(backend)
        self._events = None if events is None else EventsHandle(events)
        observers: list[RequestObserver] = [self._metrics]
        self._impressions: ImpressionLog | None = None
        if self._events is not None:
            self._impressions = ImpressionLog(self._events, self._feedback)
            observers.append(self._impressions)
        self._service = RecommendService(
            handles_for(retrieval, content, features, ranking, self._events),
            catalog,
            manifest_version(context),
            observer=Observers(*observers),
        )
        logger.info(
            "catalog: %d movies, %d genres, %d popular",
            len(catalog),
            len(catalog.genres),
            len(catalog.popular_ids),
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        """The HTTP API over this replica's service (Serve calls it after `__init__`)."""
        return create_app(self._service, self._policy, self._events, self._feedback)

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Applies the `user_config` (`ControllerConfig`) without a restart."""
        validated = ControllerConfig.model_validate(config or {})
        self._service.configure(validated)
        self._service.candidate_problems = check_candidates(validated, self._ranking_dir)
        self._metrics.set_coverage_window(validated.monitoring.coverage_window_s)
        if self._impressions is not None:
            impressions = validated.impressions
            self._impressions.configure(impressions.log_served, impressions.log_queue)


__all__ = ["Controller"]
