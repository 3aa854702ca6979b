"""Schemathesis hooks of the API contract runs (`SCHEMATHESIS_HOOKS`, see `_contract.py`).

Domain rules a schema cannot state, applied to positive cases only, so that
`positive_data_acceptance` stays on for every operation (negative cases are kept: their 422
is what `negative_data_rejection` expects):

* `GET /recommendations/{user_id}`: `year_min` must not exceed `year_max` (OpenAPI cannot
  relate two parameters); positive cases that break it are dropped.
* `POST /events`: an event's movie must be in the catalog, `value` is required for `rating`
  and refused for other types, and `timestamp` must be a time (ISO 8601 or epoch seconds,
  not ahead of the server); positive cases are mapped onto those rules (movie ids into
  1..50, every catalog's first ids; value set or removed by type; timestamp a fixed time).
"""

from __future__ import annotations

from typing import Any

import schemathesis

RECOMMENDATIONS = "/recommendations/{user_id}"
EVENTS = "/events"
KNOWN_MOVIES = 50


def _year(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _positive(ctx: Any, case: Any, path: str) -> bool:
    """Whether `case` is a positive case (schema-valid input) of the operation at `path`."""
    if ctx.operation is None or ctx.operation.path != path:
        return False
    meta = case.meta
    return meta is None or bool(meta.generation.mode.is_positive)


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """False (drop) for a positive case of the recommendations route with an empty year range."""
    if not _positive(ctx, case, RECOMMENDATIONS):
        return True
    query = case.query or {}
    low, high = _year(query.get("year_min")), _year(query.get("year_max"))
    return low is None or high is None or low <= high


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    """A positive case of `POST /events` mapped onto the rules its schema cannot state."""
    if not _positive(ctx, case, EVENTS):
        return case
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return case
    for event in body["events"]:
        if not isinstance(event, dict):
            continue
        movie_id = event.get("movie_id")
        if isinstance(movie_id, int | float) and not isinstance(movie_id, bool):
            event["movie_id"] = (int(movie_id) - 1) % KNOWN_MOVIES + 1
        if event.get("type") == "rating":
            value = event.get("value")
            if not isinstance(value, int | float) or not 0.5 <= value <= 5.0:
                event["value"] = 4.0
        else:
            event.pop("value", None)
        if event.get("timestamp") is not None:
            event["timestamp"] = 1_700_000_000
    return case
