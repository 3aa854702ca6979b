"""Schemathesis hooks of the API contract runs (`SCHEMATHESIS_HOOKS`, see `_contract.py`).

One domain rule a schema cannot state: on `GET /recommendations/{user_id}`, `year_min` must
not exceed `year_max` (OpenAPI cannot relate two parameters; the API answers 422). Positive
cases that break it are dropped, so `positive_data_acceptance` stays on for the operation;
negative cases are kept (their 422 is what `negative_data_rejection` expects).
"""

from __future__ import annotations

from typing import Any

import schemathesis

RECOMMENDATIONS = "/recommendations/{user_id}"


def _year(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """False (drop) for a positive case of the recommendations route with an empty year range."""
    if ctx.operation is None or ctx.operation.path != RECOMMENDATIONS:
        return True
    meta = case.meta
    if meta is not None and not meta.generation.mode.is_positive:
        return True
    query = case.query or {}
    low, high = _year(query.get("year_min")), _year(query.get("year_max"))
    return low is None or high is None or low <= high
