"""Unit tests of the served-quality metrics and config handling (pure: no services)."""

from __future__ import annotations

import pytest

from benchmarks.served_quality import (
    cap_compliance,
    catalog_coverage,
    check_targets,
    degraded_summary,
    genre_diversity,
    rules_off,
    system_report,
)
from benchmarks.stack import ServeConfig

GENRES = {1: ("Drama",), 2: ("Drama",), 3: ("Drama", "War"), 4: ("Comedy",), 5: ("Drama",)}


def genres_of(movie_id: int) -> tuple[str, ...]:
    return GENRES.get(movie_id, ())


def test_coverage_and_diversity() -> None:
    lists = {1: [1, 2, 3], 2: [3, 4]}
    assert catalog_coverage(lists, catalog_size=8, k=10) == pytest.approx(4 / 8)
    assert catalog_coverage(lists, catalog_size=8, k=1) == pytest.approx(2 / 8)
    assert genre_diversity(lists, genres_of, k=10) == pytest.approx((2 + 3) / 2)
    assert genre_diversity({}, genres_of, k=10) == 0.0


def test_cap_compliance() -> None:
    lists = {1: [1, 2, 3, 4], 2: [1, 2, 3, 5], 3: [4, 1]}
    # user 2 has four Drama movies in the first 4 positions: cap 3 over window 4 breaks
    assert cap_compliance(lists, genres_of, cap=3, window=4) == pytest.approx(2 / 3)
    assert cap_compliance(lists, genres_of, cap=0, window=4) == 1.0


def test_system_report_uses_the_protocol_metrics() -> None:
    report = system_report({1: [1, 2], 2: [4]}, {1: {2}, 2: {4}}, 2, genres_of, 5, 3, 5)
    assert report["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert report["recall@2"] == pytest.approx(1.0)
    assert set(report) >= {"ndcg@2", "map@2", "catalog_coverage", "genre_cap_compliance"}


def test_rules_off_changes_only_the_controller_rules() -> None:
    config = ServeConfig.load()
    off = rules_off(config)
    rules = off.user_config("Controller")["rules"]
    assert rules["genre_cap"] == 0
    assert rules["promoted_boost"] == 0.0
    assert config.user_config("Controller")["rules"]["genre_cap"] > 0  # the original is intact
    assert off.user_config("Ranking") == config.user_config("Ranking")


def test_quality_targets() -> None:
    served = {
        "rules_off": {"ndcg@10": 0.4675, "genre_cap_compliance": 0.6},
        "rules_on": {"ndcg@10": 0.440, "genre_cap_compliance": 1.0},
    }
    offline = {"systems": {"ranked": {"ndcg@10": 0.469}}, "served_with_rules": {"ndcg@10": 0.443}}
    targets = check_targets(served, offline, 10)
    assert targets["ndcg_gap_rules_off_vs_offline"]["value"] == pytest.approx(0.0015)
    assert targets["ndcg_gap_rules_off_vs_offline"]["met"] is True
    assert targets["ndcg_gap_rules_on_vs_offline"]["value"] == pytest.approx(0.003)
    assert targets["ndcg_gap_rules_on_vs_offline"]["met"] is False  # 0.003 > 0.002
    assert targets["ndcg_cost_of_rules"]["met"] is False
    assert targets["genre_cap_kept"]["met"] is True
    assert check_targets({"as_deployed": {}}, None, 10)["ndcg_cost_of_rules"]["met"] is None


def test_degraded_summary_names_each_replay_and_stage() -> None:
    served = {
        "rules_on": {"replay": {"degraded": 0, "fallbacks": {}}},
        "rules_off": {"replay": {"degraded": 3, "fallbacks": {"ranking": 2, "content": 1}}},
    }
    assert degraded_summary(served) == "rules_on 0; rules_off 3 (content 1, ranking 2)"
