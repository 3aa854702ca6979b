"""RetrievalConfig validation and (de)serialization."""

from __future__ import annotations

import json

import pytest

from models.retrieval.config import RetrievalConfig


def test_round_trip_through_json() -> None:
    config = RetrievalConfig(hidden_dims=(32, 16), negatives="full", epochs=3)
    data = json.loads(json.dumps(config.to_dict()))
    assert RetrievalConfig.from_dict(data) == config


@pytest.mark.parametrize(
    "kwargs",
    [{"negatives": "random"}, {"temperature": 0.0}, {"batch_size": 0}, {"optimizer": "sgd"}],
)
def test_rejects_invalid_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetrievalConfig(**kwargs)  # type: ignore[arg-type]


def test_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="unknown"):
        RetrievalConfig.from_dict({"epochs": 1, "bogus": 2})
