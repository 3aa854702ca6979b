"""`POST /events` validation: every invalid shape is a 422 naming the event and field (pure:
the route over a recording stage, no services; the real path is test_events_e2e.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deployments.api import CatchAllMiddleware, _allowed
from deployments.catalog import Catalog, Movie
from deployments.event_api import EVENTS_MAX_BODY_BYTES, EVENTS_PATH, add_event_routes
from deployments.security import BodyLimitMiddleware
from movierec.events import Event, ForgetResult, IngestResult, RateLimitedError


class RecordingStage:
    """Accepts everything and remembers it; `down` makes it fail like a dead Redis."""

    def __init__(self) -> None:
        self.received: list[Event] = []
        self.clients: list[str] = []
        self.down = False
        self.limited = False

    async def ingest(self, events: Sequence[Event], client_id: str = "anonymous") -> IngestResult:
        if self.down:
            raise ConnectionError("redis down")
        if self.limited:
            raise RateLimitedError(2)
        self.clients.append(client_id)
        self.received += events
        return IngestResult(len(events), 0)

    async def forget(self, user_id: int) -> ForgetResult:
        if self.down:
            raise ConnectionError("redis down")
        return ForgetResult(sum(e.user_id == user_id for e in self.received), 0)

    async def health(self) -> dict[str, Any]:
        return {"status": "ok"}


@pytest.fixture
def stage() -> RecordingStage:
    return RecordingStage()


@pytest.fixture
def client(stage: RecordingStage) -> TestClient:
    catalog = Catalog([Movie(1, "A", ("Drama",), 1990), Movie(2, "B", ("Comedy",), 1991)])
    app = FastAPI()
    app.add_middleware(
        BodyLimitMiddleware, max_bytes=16 * 1024, route_caps={EVENTS_PATH: EVENTS_MAX_BODY_BYTES}
    )
    app.add_middleware(CatchAllMiddleware)
    add_event_routes(app, stage, catalog, [], {}, _allowed)
    return TestClient(app)


def ok(**fields: Any) -> dict[str, Any]:
    return {"user_id": 1, "movie_id": 1, "type": "watch", **fields}


def test_valid_events_are_accepted_with_202(client: TestClient, stage: RecordingStage) -> None:
    body = {
        "events": [
            ok(type="rating", value=4.5, event_id="e-1", timestamp="2024-05-01T10:00:00Z"),
            ok(type="rating", value=3, timestamp=1_700_000_000, user_id=5.0),
            ok(type="dismiss", movie_id=2),
            ok(type="click", timestamp="2024-05-01T10:00:00"),
            ok(type="impression"),
        ]
    }
    answer = client.post(EVENTS_PATH, json=body)
    assert answer.status_code == 202 and answer.json() == {"accepted": 5, "duplicates": 0}
    first, second = stage.received[:2]
    assert first.value == 4.5 and first.event_id == "e-1"
    assert first.timestamp == 1_714_557_600.0  # the client's time, kept
    assert second.value == 3.0 and second.timestamp == 1_700_000_000.0
    assert second.user_id == 5 and isinstance(second.user_id, int)  # 5.0: a JSON integer
    assert stage.received[3].timestamp == 1_714_557_600.0  # no offset: UTC


@pytest.mark.parametrize(
    ("events", "loc", "message"),
    [
        ([ok(), ok(movie_id=99)], ["body", "events", 1, "movie_id"], "unknown movie 99"),
        ([ok(type="rating", value=5.5)], ["body", "events", 0, "value"], "0.5..5.0"),
        ([ok(type="rating", value=0.0)], ["body", "events", 0, "value"], "0.5..5.0"),
        ([ok(type="rating")], ["body", "events", 0, "value"], "required"),
        ([ok(type="rating", value="4")], ["body", "events", 0, "value"], "number"),
        ([ok(value=4.0)], ["body", "events", 0, "value"], "only allowed for rating"),
        ([ok(type="like")], ["body", "events", 0, "type"], "Input should be"),
        ([ok(timestamp="yesterday")], ["body", "events", 0, "timestamp"], "ISO 8601"),
        ([ok(timestamp=-5)], ["body", "events", 0, "timestamp"], "after 1970"),
        ([ok(timestamp=4e10)], ["body", "events", 0, "timestamp"], "future"),
        ([ok(timestamp=True)], ["body", "events", 0, "timestamp"], "epoch seconds"),
        ([ok(user_id=0)], ["body", "events", 0, "user_id"], "greater than"),
        ([ok(user_id="1")], ["body", "events", 0, "user_id"], "integer"),
        ([ok(user_id=1.5)], ["body", "events", 0, "user_id"], "integer"),
        ([ok(movie_id=True)], ["body", "events", 0, "movie_id"], "integer"),
        ([ok(event_id="x" * 65)], ["body", "events", 0, "event_id"], "at most 64"),
        ([ok(event_id="has space")], ["body", "events", 0, "event_id"], "pattern"),
        ([ok(colour="red")], ["body", "events", 0, "colour"], "Extra inputs"),
        ([{"user_id": 1, "type": "watch"}], ["body", "events", 0, "movie_id"], "required"),
        ([], ["body", "events"], "at least 1"),
        ([ok()] * 501, ["body", "events"], "at most 500"),
        ("watch", ["body", "events"], "valid list"),
        ([[1, 50]], ["body", "events", 0], "valid dictionary"),
    ],
)
def test_invalid_events_reject_the_request_with_422_naming_event_and_field(
    client: TestClient, stage: RecordingStage, events: Any, loc: list[Any], message: str
) -> None:
    answer = client.post(EVENTS_PATH, json={"events": events})
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert any(e["loc"] == loc and message in e["msg"] for e in errors), errors
    assert stage.received == []  # all or nothing


def test_wrong_bodies_get_422(client: TestClient) -> None:
    for body in (b"", b"not json", b'{"events": [1', b"[]"):
        answer = client.post(
            EVENTS_PATH, content=body, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, body
    assert client.post(EVENTS_PATH, json={"events": [ok()]}, params={"x": 1}).status_code == 422


def test_the_route_has_its_own_body_cap(client: TestClient) -> None:
    five_hundred = {"events": [ok(type="rating", value=4.5, event_id="e" * 64)] * 500}
    assert client.post(EVENTS_PATH, json=five_hundred).status_code == 202
    huge = b"{" + b" " * EVENTS_MAX_BODY_BYTES + b"}"
    answer = client.post(EVENTS_PATH, content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413


def test_a_log_that_cannot_take_the_events_answers_503_with_retry_after(
    client: TestClient, stage: RecordingStage
) -> None:
    stage.down = True
    answer = client.post(EVENTS_PATH, json={"events": [ok()]})
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"
    assert "retry" in answer.json()["detail"]


def test_delete_answers_what_was_removed_and_503_when_down(
    client: TestClient, stage: RecordingStage
) -> None:
    client.post(EVENTS_PATH, json={"events": [ok(), ok(user_id=2)]})
    answer = client.delete("/users/1/events")
    assert answer.status_code == 200
    assert answer.json() == {"user_id": 1, "events": 1, "movies": 0}
    assert client.delete("/users/0/events").status_code == 422
    stage.down = True
    answer = client.delete("/users/1/events")
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "1"


def test_over_the_rate_429_with_retry_after_per_key_digest(
    client: TestClient, stage: RecordingStage
) -> None:
    client.post(EVENTS_PATH, json={"events": [ok()]}, headers={"X-API-Key": "k1"})
    client.post(EVENTS_PATH, json={"events": [ok()]})
    assert stage.clients[1] == "anonymous" and stage.clients[0] not in ("k1", "anonymous")
    stage.limited = True
    answer = client.post(EVENTS_PATH, json={"events": [ok()]})
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "2"
