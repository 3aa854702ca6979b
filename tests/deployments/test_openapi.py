"""The OpenAPI document describes the app as built, and /docs needs nothing from a CDN.

`create_app` over a service whose stages are never called (only the document, the docs page
and validation are exercised).
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from deployments.api import create_app
from deployments.catalog import Catalog, Movie
from deployments.openapi import SWAGGER_ASSETS, genre_type, swagger_ui_dir
from deployments.security import API_KEY_HEADER, SecurityPolicy
from deployments.service import RecommendService
from deployments.stages import Stages

KEY = "k" * 40
GENRES = ("Children's", "Drama", "Sci-Fi")
CATALOG = Catalog(
    [Movie(1, "A", ("Drama", "Children's"), 1995), Movie(2, "B", ("Sci-Fi",), None)], [1, 2]
)
PROTECTED = ("/recommendations/{user_id}", "/movies/{movie_id}/similar")


class _Unused:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"no stage is called here ({name})")


def _client(api_key: str | None) -> TestClient:
    stages = Stages(_Unused(), _Unused(), _Unused(), _Unused())  # type: ignore[arg-type]
    service = RecommendService(stages, CATALOG, "v1")
    return TestClient(create_app(service, SecurityPolicy(api_key, max_body_bytes=1024)))


def _operation(spec: dict[str, Any], path: str) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"][path]["get"]
    return operation


def test_auth_off_declares_no_security_scheme_and_no_401() -> None:
    spec = _client(None).get("/openapi.json").json()
    assert "securitySchemes" not in spec.get("components", {})
    for path in (*PROTECTED, "/healthz"):
        operation = _operation(spec, path)
        assert "security" not in operation
        assert "401" not in operation["responses"]


def test_auth_on_declares_the_key_scheme_and_401_on_the_protected_routes() -> None:
    spec = _client(KEY).get("/openapi.json").json()
    (scheme,) = spec["components"]["securitySchemes"].values()
    assert scheme["type"] == "apiKey" and scheme["in"] == "header"
    assert scheme["name"] == API_KEY_HEADER
    for path in PROTECTED:
        operation = _operation(spec, path)
        assert operation["security"] == [{"APIKeyHeader": []}]
        assert "401" in operation["responses"]
    health = _operation(spec, "/healthz")  # open to probes: no key required
    assert "security" not in health and "401" not in health["responses"]
    assert KEY not in str(spec)


@pytest.mark.parametrize("api_key", [None, KEY])
def test_front_end_errors_are_documented_on_every_route(api_key: str | None) -> None:
    spec = _client(api_key).get("/openapi.json").json()
    for path in (*PROTECTED, "/healthz"):
        responses = _operation(spec, path)["responses"]
        assert {"400", "408", "413", "414", "431", "500", "503"} <= set(responses), path
        # HAProxy answers in HTML, Serve's proxy and uvicorn in plain text, this app in JSON
        for status in ("400", "408", "414", "431", "500", "503"):
            assert {"text/html", "text/plain"} <= set(responses[status]["content"]), status
        for status in ("400", "500"):
            assert "application/json" in responses[status]["content"], status
        assert responses["503"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
    # a route's own 503 keeps the proxy's answers and adds its JSON body
    similar = _operation(spec, "/movies/{movie_id}/similar")["responses"]["503"]["content"]
    assert {"text/plain", "text/html", "application/json"} <= set(similar)
    health = _operation(spec, "/healthz")["responses"]["503"]["content"]["application/json"]
    assert health["schema"]["$ref"].endswith("/HealthResponse")


def test_genres_are_an_enum_of_the_catalogs_genres() -> None:
    client = _client(None)
    spec = client.get("/openapi.json").json()
    (genres,) = [
        p
        for p in _operation(spec, "/recommendations/{user_id}")["parameters"]
        if p["name"] == "genres"
    ]
    (array,) = [s for s in genres["schema"]["anyOf"] if s.get("type") == "array"]
    assert array["items"]["enum"] == list(GENRES)  # sorted
    assert array["maxItems"] == 10
    # what the schema does not allow is a 422 (the empty value included), before any stage
    for value in ("", "drama", "Nope"):
        response = client.get("/recommendations/1", params={"genres": value})
        assert response.status_code == 422, value


def test_genre_type_needs_genres() -> None:
    with pytest.raises(ValueError, match="no genres"):
        genre_type([])


@pytest.mark.parametrize("api_key", [None, KEY])
def test_docs_serve_swagger_ui_from_the_installed_package(api_key: str | None) -> None:
    client = _client(api_key)
    page = client.get("/docs")  # open in both modes: it holds no data
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN, no validator
    assert '"validatorUrl": null' in page.text
    for name, media_type in SWAGGER_ASSETS.items():
        assert f"/docs/assets/{name}" in page.text
        asset = client.get(f"/docs/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(media_type)
        assert asset.content == (swagger_ui_dir() / name).read_bytes()
    # only the listed files: not the distribution's demo page (which loads a remote spec)
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404
    assert client.get("/redoc").status_code == 404  # ReDoc is off (it needs a CDN)
    spec = client.get("/openapi.json").json()
    assert not any(path.startswith("/docs") for path in spec["paths"])


def test_swagger_ui_reads_openapi_3_1() -> None:
    """FastAPI writes OpenAPI 3.1, which Swagger UI renders from version 5 on."""
    assert swagger_ui_dir().name.startswith("swagger-ui-5.")
    assert _client(None).get("/openapi.json").json()["openapi"].startswith("3.1")
