"""The open-loop probe against a tiny local HTTP server (stdlib, in a thread): what it
offers, and how it counts full, degraded and failed answers. No timing threshold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from benchmarks.capacity import Criteria
from benchmarks.openloop import probe

FULL = b'{"user_id":1,"items":[],"degraded":false,"fallbacks":[],"cold_start":false}'
DEGRADED = (
    b'{"user_id":2,"items":[],"degraded":true,'
    b'"fallbacks":[{"stage":"content","reason":"timeout"}],"cold_start":false}'
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        user = int(self.path.split("/")[2].split("?")[0])
        if user == 3:
            self.send_response(503)
            self.end_headers()
            return
        body = DEGRADED if user == 2 else FULL
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_probe_counts_full_degraded_and_failed_answers(server_url: str) -> None:
    # users cycle over 1 (full), 2 (degraded), 3 (HTTP 503): a third of each
    result = probe(server_url, 30.0, 0.0, 1.0, [1, 2, 3], 10, 4, 5.0, Criteria())
    assert result["offered"] == 30
    assert result["good"] == 10
    assert result["degraded"] == 10
    assert result["failed"] == 10
    assert result["ok"] == 20
    assert result["bad_share"] == pytest.approx(20 / 30)
    assert result["fallbacks"] == {"content:timeout": 10}
    assert result["passed"] is False
    assert result["p99_ms"] is not None


def test_probe_of_full_answers_passes_a_generous_budget(server_url: str) -> None:
    result = probe(server_url, 20.0, 0.2, 0.5, [1], 10, 4, 5.0, Criteria(0.01, 10_000.0))
    assert (result["offered"], result["good"], result["failed"]) == (10, 10, 0)
    assert result["passed"] is True
