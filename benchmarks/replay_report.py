"""The README table of `benchmarks.replay` (`replay.json` -> markdown)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchmarks.common import machine_summary

ARMS = {
    "a": "(a) known users, no events",
    "b": "(b) known users, first half posted as ratings",
    "c": "(c) new users, cold start (no events)",
    "d": "(d) new users, first half's likes posted",
}


def _load(report: Mapping[str, Any]) -> str:
    start = report.get("load_average", {}).get("start")
    end = report.get("load_average", {}).get("end")
    return f"load average {start} before, {end} after"


def markdown_table(report: Mapping[str, Any]) -> str:
    """The arms, the deltas and where they came from."""
    setup = report["setup"]
    k = setup["k"]
    split = setup["split"]
    events = setup["events"]
    wait = setup["applied_wait"]
    commit = str(report.get("commit") or "?")[:12]
    timeouts = setup["timeouts"]
    deadlines = (
        "serve_config.yaml's stage deadlines"
        if timeouts == "production"
        else f"relaxed stage deadlines (total {timeouts['total']} s)"
    )
    lines = [
        f"Run {report.get('created', '?')} at commit `{commit}` on "
        f"{machine_summary(report.get('machine') or {})}; {_load(report)}; "
        f"{setup['elapsed_s']} s in all (build {setup['build']['seconds']} s, replay "
        f"{setup['replay_s']} s). Split: the latest {split['test_share']:.0%} of each known "
        f"user's ratings held out (at least {split['min_test']}), {split['new_users']} new users "
        f"(seed {split['seed']}); model `{setup['model_version']}`; one client, {deadlines}. "
        f"Posted {events['accepted']} events in {events['posts']} requests "
        f"({events['seconds']} s); the appliers had applied them "
        f"{'after' if wait['applied'] else '**not** within'} {wait['seconds']} s. "
        f"{events['new_users_without_likes']} new users had no like in their first half and "
        f"are not scored.",
        "",
        f"| arm | users scored | nDCG@{k} | recall@{k} | nDCG@{k} as served | degraded "
        f"(first try / after retries / left out) | cold start answers | answers holding a "
        "posted movie |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, label in ARMS.items():
        values = report["arms"].get(arm)
        if values is None:
            continue
        holding = values["answers_holding_posted"]
        lines.append(
            f"| {label} | {values['scored_users']} | {values[f'ndcg@{k}']:.4f} | "
            f"{values[f'recall@{k}']:.4f} | {values['as_served'][f'ndcg@{k}']:.4f} | "
            f"{values['degraded_first_try']} / {values['degraded']} / "
            f"{values['left_out_degraded']} | {values['cold_start']} of {values['requests']} | "
            f"{'-' if holding is None else holding} |"
        )
    lines += [
        "",
        f"| change | nDCG@{k} | recall@{k} | nDCG@{k} vs. the no-event arm as served "
        "| users better / worse / same | mean per-user change ± s.e. |",
        "|---|---|---|---|---|---|",
    ]
    for name, delta in report["deltas"].items():
        after, before = name.split("-")
        per = delta["per_user"]
        lines.append(
            f"| ({after}) - ({before}) | {delta[f'ndcg@{k}']:+.4f} | "
            f"{delta[f'recall@{k}']:+.4f} | {delta[f'ndcg@{k}_vs_{before}_as_served']:+.4f} | "
            f"{per['better']} / {per['worse']} / {per['same']} | "
            f"{per['mean']:+.4f} ± {per['stderr']:.4f} |"
        )
    return "\n".join(lines)
