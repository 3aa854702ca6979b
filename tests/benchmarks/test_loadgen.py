"""Unit tests of the load generator's argument checks (pure: no services, no locust)."""

from __future__ import annotations

import itertools

import pytest

from benchmarks.loadgen import LoadGenError, check_loopback, parse_fallbacks, user_cycle


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000/", "http://localhost:9", "http://[::1]:80", "http://127.0.0.5"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    assert not check_loopback(url).endswith("/")


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:8000", "http://example.com", "ftp://127.0.0.1", "127.0.0.1:8000"]
)
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(LoadGenError):
        check_loopback(url)


def test_user_cycle_is_a_fixed_permutation_repeated() -> None:
    first = list(itertools.islice(user_cycle([1, 2, 3, 4, 5]), 10))
    assert sorted(first[:5]) == [1, 2, 3, 4, 5]
    assert first[5:] == first[:5]
    assert list(itertools.islice(user_cycle([1, 2, 3, 4, 5]), 5)) == first[:5]
    with pytest.raises(LoadGenError):
        user_cycle([])


def test_parse_fallbacks_of_a_degraded_answer() -> None:
    body = (
        b'{"user_id":1,"items":[],"model_version":"v","degraded":true,"fallbacks":'
        b'[{"stage":"content","reason":"timeout"},{"stage":"ranking","reason":"budget"}],'
        b'"cold_start":false}'
    )
    assert parse_fallbacks(body) == "content:timeout,ranking:budget"
    assert parse_fallbacks(b'{"degraded":false,"fallbacks":[]}') == ""
