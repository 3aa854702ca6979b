"""API key, production checks and the body cap, on a real FastAPI app (no services)."""

from __future__ import annotations

import logging

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr

from deployments.security import (
    API_KEY_HEADER,
    APIKeyGuard,
    BodyLimitMiddleware,
    InsecureConfigError,
    SecurityPolicy,
)
from movierec.settings import Settings

STRONG = "k" * 40


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def _app(policy: SecurityPolicy) -> TestClient:
    guard = APIKeyGuard(policy)
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=policy.max_body_bytes)

    @app.get("/private", dependencies=[Depends(guard.dependency())])
    async def private() -> dict[str, str]:
        return {"ok": "yes"}

    @app.post("/echo", dependencies=[Depends(guard.dependency())])
    async def echo(body: dict[str, str]) -> dict[str, str]:
        return body

    return TestClient(app)


def test_auth_is_off_without_a_key_outside_production() -> None:
    policy = SecurityPolicy.from_settings(_settings())
    assert not policy.auth_enabled
    assert _app(policy).get("/private").status_code == 200


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"environment": "production"}, "needs MOVIEREC_API_KEY"),
        ({"environment": "production", "api_key": "changeme"}, "placeholder"),
        ({"environment": "production", "api_key": "short-but-real"}, "shorter than 32"),
        ({"api_key": "   "}, "set but empty"),
    ],
)
def test_insecure_configurations_refuse_to_start(values: dict[str, str], message: str) -> None:
    with pytest.raises(InsecureConfigError, match=message) as error:
        SecurityPolicy.from_settings(_settings(**values))
    key = values.get("api_key")
    if key and key.strip():
        assert key not in str(error.value)  # the message names the setting, never its value


def test_production_with_a_strong_key(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        policy = SecurityPolicy.from_settings(_settings(environment="production", api_key=STRONG))
    assert policy.auth_enabled and policy.environment == "production"
    assert STRONG not in caplog.text and "auth on" in caplog.text


def test_missing_or_wrong_key_gets_401_right_key_200() -> None:
    client = _app(SecurityPolicy(api_key=STRONG, max_body_bytes=1024))
    missing = client.get("/private")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "ApiKey"
    assert API_KEY_HEADER in missing.json()["detail"]
    wrong = client.get("/private", headers={API_KEY_HEADER: STRONG[:-1] + "x"})
    assert wrong.status_code == 401 and STRONG not in wrong.text
    assert client.get("/private", headers={API_KEY_HEADER: ""}).status_code == 401
    right = client.get("/private", headers={API_KEY_HEADER: STRONG})
    assert right.status_code == 200 and right.json() == {"ok": "yes"}


def test_the_key_setting_is_secret() -> None:
    settings = _settings(api_key=STRONG)
    assert isinstance(settings.api_key, SecretStr)
    assert STRONG not in repr(settings) and STRONG not in str(settings.model_dump())


def test_bodies_over_the_cap_get_413() -> None:
    client = _app(SecurityPolicy(api_key=None, max_body_bytes=100))
    assert client.post("/echo", json={"a": "b"}).json() == {"a": "b"}
    declared = client.post("/echo", json={"a": "x" * 200})
    assert declared.status_code == 413 and "100 bytes" in declared.json()["detail"]

    def chunks() -> object:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b"x" * 50

    streamed = client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413
    bad = client.get("/private", headers={"content-length": "-5"})
    assert bad.status_code == 400


def test_the_guard_declares_the_key_scheme_only_when_auth_is_on() -> None:
    off = _app(SecurityPolicy(api_key=None, max_body_bytes=1024)).get("/openapi.json").json()
    assert "securitySchemes" not in off.get("components", {})
    assert "security" not in off["paths"]["/private"]["get"]
    on = _app(SecurityPolicy(api_key=STRONG, max_body_bytes=1024)).get("/openapi.json").json()
    assert on["components"]["securitySchemes"]["APIKeyHeader"]["name"] == API_KEY_HEADER
    assert on["paths"]["/private"]["get"]["security"] == [{"APIKeyHeader": []}]
    assert not APIKeyGuard(SecurityPolicy(None, 1)).enabled
    assert APIKeyGuard(SecurityPolicy(STRONG, 1)).enabled
