"""The API's OpenAPI document and docs page, describing the app as deployed.

* `PROTOCOL_ERRORS`: the answers a request can get before or outside any route (HAProxy's and
  uvicorn's to a malformed or over-long request line or headers; Serve's proxy's timeout,
  backpressure and unavailable answers; this app's own to a bad `Content-Length` or an
  over-large body), documented on every route; `with_model` adds a route's own JSON body.
* `genre_type(genres)`: the `genres` parameter's type, a `Literal` of the catalog's genres,
  so the schema lists them as an enum (a schema-valid value is one the API accepts).
* `mount_docs(app)`: Swagger UI at `/docs` from the installed `swagger-ui-bundle-v2`
  package (no CDN: the page works offline and runs no third-party code); ReDoc is off.

No `from __future__ import annotations` here: FastAPI must resolve the routes' annotations.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response

from deployments.schemas import ErrorResponse

_TEXT = {"schema": {"type": "string"}}

_FRONT_END = {"text/html": _TEXT, "text/plain": _TEXT}  # HAProxy: HTML; Serve, uvicorn: text

PROTOCOL_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorResponse,
        "description": "Malformed request: an invalid Content-Length (JSON), or a request "
        "line or header the HTTP front end cannot parse.",
        "content": _FRONT_END,
    },
    408: {
        "description": "The request took longer than the proxy's `request_timeout_s`.",
        "content": _FRONT_END,
    },
    413: {"model": ErrorResponse, "description": "Request body over the size cap."},
    414: {"description": "Request line too long.", "content": _FRONT_END},
    431: {"description": "Request headers too large.", "content": _FRONT_END},
    500: {
        "model": ErrorResponse,
        "description": "Unexpected error (no details; the proxy's own in plain text).",
        "content": _FRONT_END,
    },
    503: {
        "description": "Overloaded (Serve's backpressure: at once, with Retry-After) or no "
        "replica available (answered by the proxy).",
        "content": _FRONT_END,
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before retrying (backpressure).",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    },
}
"""Answers every route can give whatever its parameters (FastAPI `responses=`)."""


def with_model(status: int, model: type[Any], description: str) -> dict[str, Any]:
    """`PROTOCOL_ERRORS[status]` plus a route's own JSON answer with that status."""
    return {**PROTOCOL_ERRORS[status], "model": model, "description": description}


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid API key."},
}
"""Documented on the protected routes only when auth is on."""


def genre_type(genres: Iterable[str]) -> Any:
    """`Literal[<each genre, sorted>]`: the schema shows them as an enum of strings.

    Args:
        genres: The catalog's genre names (at least one).

    Raises:
        ValueError: No genres (the catalog did not load).
    """
    names = tuple(sorted(genres))
    if not names:
        raise ValueError("the catalog has no genres")
    return Literal[names]


SWAGGER_ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
"""The files of the Swagger UI distribution that `/docs` loads, and their media types."""


def swagger_ui_dir() -> Path:
    """The installed Swagger UI distribution (`swagger-ui-bundle-v2`)."""
    from swagger_ui_bundle import swagger_ui_path

    return Path(str(swagger_ui_path))


def mount_docs(app: FastAPI) -> None:
    """Adds `/docs` (Swagger UI) and `/docs/assets/{name}` (its files) to an app built with
    `docs_url=None, redoc_url=None`. Neither route is in the OpenAPI document."""
    assets = swagger_ui_dir()
    missing = [name for name in SWAGGER_ASSETS if not (assets / name).is_file()]
    if missing:
        raise FileNotFoundError(f"Swagger UI files missing from {assets}: {missing}")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png",
            # no validator badge: it would fetch an image from validator.swagger.io
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        media_type = SWAGGER_ASSETS.get(name)
        if media_type is None:  # only the listed files, never the directory
            return JSONResponse({"detail": "not found"}, status_code=404)
        return FileResponse(
            assets / name, media_type=media_type, headers={"Cache-Control": "max-age=86400"}
        )


__all__ = [
    "PROTOCOL_ERRORS",
    "SWAGGER_ASSETS",
    "UNAUTHORIZED",
    "genre_type",
    "mount_docs",
    "swagger_ui_dir",
    "with_model",
]
