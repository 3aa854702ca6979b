"""API security: the optional API key, the production checks and the request body cap.

* `SecurityPolicy.from_settings()` reads `MOVIEREC_API_KEY`, `MOVIEREC_ENVIRONMENT` and
  `MOVIEREC_MAX_BODY_BYTES` (pydantic-settings, `movierec.settings`). In production it refuses
  an empty, short or placeholder key (`InsecureConfigError`): the replica does not start, so
  the deploy fails instead of serving an open API.
* `APIKeyGuard` is a FastAPI dependency: the `X-API-Key` header compared in constant time
  (`hmac.compare_digest`); a missing or wrong key gets HTTP 401. With auth on it declares the
  scheme in the OpenAPI document; with auth off it declares nothing (the document describes
  the deployed behaviour: no key needed).
* `BodyLimitMiddleware` answers HTTP 413 to a request body over the cap (declared length or
  bytes actually received), before any route reads it.

The key itself is never logged, put in a response or an exception message.

No `from __future__ import annotations` here: FastAPI must resolve the dependency's
annotations at runtime.
"""

import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import HTTPException, Security
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from movierec.settings import Settings, get_settings

logger = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
MIN_PRODUCTION_KEY_LENGTH = 32
PLACEHOLDER_KEYS = frozenset(
    {"changeme", "change-me", "default", "secret", "password", "apikey", "api-key", "test"}
)
"""Keys refused in production whatever their length (compared case-insensitively)."""


class InsecureConfigError(RuntimeError):
    """The security settings are not acceptable for the environment (the message names the
    setting, never its value)."""


@dataclass(frozen=True)
class SecurityPolicy:
    """What the API enforces.

    Attributes:
        api_key: The key clients must send (None: auth off).
        max_body_bytes: Larger request bodies get HTTP 413.
        environment: "development" or "production".
    """

    api_key: str | None
    max_body_bytes: int
    environment: str = "development"

    @property
    def auth_enabled(self) -> bool:
        """Whether requests need the API key."""
        return self.api_key is not None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> "SecurityPolicy":
        """The policy of these settings (default: the process's).

        Raises:
            InsecureConfigError: Production without a strong key, or a set but empty key.
        """
        settings = settings or get_settings()
        key = settings.api_key.get_secret_value() if settings.api_key is not None else None
        if key is not None and not key.strip():
            raise InsecureConfigError("MOVIEREC_API_KEY is set but empty")
        if settings.environment == "production":
            if key is None:
                raise InsecureConfigError(
                    "MOVIEREC_ENVIRONMENT=production needs MOVIEREC_API_KEY (API-key auth)"
                )
            if key.strip().lower() in PLACEHOLDER_KEYS or len(key) < MIN_PRODUCTION_KEY_LENGTH:
                raise InsecureConfigError(
                    "MOVIEREC_API_KEY is a placeholder or shorter than "
                    f"{MIN_PRODUCTION_KEY_LENGTH} characters; generate one with "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
        policy = cls(key, settings.max_body_bytes, settings.environment)
        logger.info(
            "API security: environment %s, API-key auth %s, body cap %d bytes",
            policy.environment,
            "on" if policy.auth_enabled else "OFF",
            policy.max_body_bytes,
        )
        return policy


class APIKeyGuard:
    """FastAPI dependency: the request must carry the API key (when auth is on)."""

    def __init__(self, policy: SecurityPolicy) -> None:
        self._expected = policy.api_key.encode() if policy.api_key is not None else None
        self._header = APIKeyHeader(
            name=API_KEY_HEADER,
            auto_error=False,
            description="The API key: the server's MOVIEREC_API_KEY.",
        )

    def authorized(self, presented: str | None) -> bool:
        """Whether `presented` is the key (always True when auth is off); constant time."""
        if self._expected is None:
            return True
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode(), self._expected)

    @property
    def enabled(self) -> bool:
        """Whether requests need the key."""
        return self._expected is not None

    def dependency(self) -> Callable[..., Awaitable[None]]:
        """The FastAPI dependency: HTTP 401 unless the request carries the key. With auth on
        it declares the `X-API-Key` scheme in the OpenAPI document; with auth off it is a
        no-op that declares nothing."""
        if self._expected is None:

            async def open_route() -> None:
                return None

            return open_route

        header = self._header

        async def require_api_key(presented: Annotated[str | None, Security(header)]) -> None:
            if not self.authorized(presented):
                raise HTTPException(
                    status_code=401,
                    detail=f"missing or invalid API key (header {API_KEY_HEADER})",
                    headers={"WWW-Authenticate": "ApiKey"},
                )

        return require_api_key


class BodyLimitMiddleware:
    """HTTP 413 for a request body over `max_bytes` (or its path's own cap in `route_caps`):
    by its Content-Length, or, for a chunked body, by reading it (at most the cap + one chunk
    is buffered) before the app runs."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, route_caps: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.route_caps = dict(route_caps or {})

    def _reject(self, max_bytes: int) -> JSONResponse:
        return JSONResponse(
            {"detail": f"request body too large (limit {max_bytes} bytes)"},
            status_code=413,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.route_caps.get(scope.get("path", ""), self.max_bytes)
        headers = dict(scope.get("headers", ()))
        if b"content-length" in headers:
            try:
                declared = int(headers[b"content-length"])
            except ValueError:
                declared = -1
            if declared < 0:
                invalid = JSONResponse({"detail": "invalid Content-Length"}, status_code=400)
                await invalid(scope, receive, send)
            elif declared > max_bytes:
                await self._reject(max_bytes)(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if b"transfer-encoding" not in headers:  # no body
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > max_bytes:
                await self._reject(max_bytes)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


__all__ = [
    "API_KEY_HEADER",
    "APIKeyGuard",
    "BodyLimitMiddleware",
    "InsecureConfigError",
    "SecurityPolicy",
]
