"""How the recommendation flow calls a stage: through a Serve handle, or in process.

`RecommendService` only sees `StageClient.call(method, *args)`. The Ray Serve Controller
wraps each `DeploymentHandle` in a `HandleClient`; the single-process baseline of the
benchmarks wraps the stage objects themselves in a `LocalClient`. Same flow, two transports.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any, Protocol

from ray.serve.handle import DeploymentHandle, DeploymentResponse


class StageClient(Protocol):
    """Calls one method of one stage."""

    async def call(self, method: str, *args: Any) -> Any:
        """Runs `stage.method(*args)` and returns its result (raises what it raises)."""
        ...


def _cause(exc: BaseException) -> BaseException:
    """The user exception inside a Ray task error (the exception itself otherwise)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


class HandleClient:
    """A stage behind a Ray Serve `DeploymentHandle`; cancelling the caller cancels the call."""

    def __init__(self, handle: DeploymentHandle) -> None:
        self._handle = handle

    async def call(self, method: str, *args: Any) -> Any:
        """`await handle.<method>.remote(*args)`; a Ray task error is unwrapped to its cause.

        Raises:
            TypeError: The method streams (stage calls must be unary).
        """
        response = getattr(self._handle, method).remote(*args)
        if not isinstance(response, DeploymentResponse):
            raise TypeError(f"{method} streams; stage calls must be unary")
        try:
            return await response
        except asyncio.CancelledError:
            response.cancel()  # e.g. the deadline passed: free the replica's slot
            raise
        except Exception as exc:
            raise _cause(exc) from None


class LocalClient:
    """A stage object in this process (sync or async methods)."""

    def __init__(self, stage: object) -> None:
        self._stage = stage

    async def call(self, method: str, *args: Any) -> Any:
        """`stage.<method>(*args)`, awaited if it is a coroutine."""
        result = getattr(self._stage, method)(*args)
        return await result if inspect.isawaitable(result) else result


@dataclass(frozen=True)
class Stages:
    """The four stages the Controller composes."""

    retrieval: StageClient
    features: StageClient
    content: StageClient
    ranking: StageClient

    def named(self) -> dict[str, StageClient]:
        """Stage name -> client, in a fixed order."""
        return {
            "retrieval": self.retrieval,
            "features": self.features,
            "content": self.content,
            "ranking": self.ranking,
        }
