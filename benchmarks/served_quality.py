"""`python -m benchmarks.served_quality` (`make eval-served`): the offline evaluation protocol
replayed through the running HTTP API, business rules on and off.

    python -m benchmarks.served_quality                 # starts the app in process
    python -m benchmarks.served_quality --url http://127.0.0.1:8000   # rules as deployed only

The app must serve the EVAL artifacts tree (models and features built from the training split
only). Every test user of that tree's split asks `GET /recommendations/{user}?k=10`; the
answers are scored with `models.evaluation`'s own metric functions against the test split
(nDCG@10, P@10, recall@10, MAP@10), plus the catalog coverage (distinct movies recommended /
catalog size), the genre diversity of the top 10 (mean distinct genres per list) and how
many lists keep the genre cap. The answers already exclude what each user rated in
training (the served "seen" list), which is the protocol's "seen removed".

Rules off: without `--url`, the app is deployed in process from `serve_config.yaml`, replayed
once as configured (rules on), then the Controller's `user_config` is updated in place
(`rules.genre_cap: 0`, no boosts: `reconfigure()`, no restart) and replayed again. With
`--url` only the deployed rules are measured.

Next to them: the offline numbers of the same artifacts (`python -m models.evaluation
--no-build`, run into a temporary directory so `quality.json` is not touched) and the
popularity baseline. Writes `served_quality.json` to `--out-dir`.

One client by default (`--concurrency 1`): this run checks that serving reproduces the offline
ranking (no training/serving skew), so an answer degraded by load (a stage past its deadline
on a busy 2-core machine) would measure the machine, not the skew. How many answers were
degraded, and by which stage, is still recorded per run; behaviour under load is what
`make bench` measures (goodput).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import (
    git_commit,
    load_average,
    machine_info,
    machine_summary,
    utc_now,
    write_json,
)
from benchmarks.loadgen import LoadGenError, check_loopback
from benchmarks.stack import (
    ServeConfig,
    StackError,
    add_app_arguments,
    add_readme_arguments,
    app_overrides,
    deploy,
    free_port,
    render_readme,
    serve_in_process,
    wait_healthy,
)

SERVED_QUALITY_JSON = "served_quality.json"
README_BEGIN = "<!-- served-quality:begin (python -m benchmarks.served_quality --render-only) -->"
README_END = "<!-- served-quality:end -->"
NDCG_TOLERANCE = 0.002  # issues 11 and 15: served equals offline within 0.002 nDCG
RULES_COST_MAX = 0.02


class ServedQualityError(RuntimeError):
    """The replay cannot run or its answers are unusable; the message says why."""


# --- pure metrics --------------------------------------------------------------------------------


def catalog_coverage(lists: Mapping[int, Sequence[int]], catalog_size: int, k: int) -> float:
    """Distinct movies in the users' top-k lists / catalog size."""
    distinct = {m for items in lists.values() for m in items[:k]}
    return len(distinct) / catalog_size if catalog_size else 0.0


def genre_diversity(
    lists: Mapping[int, Sequence[int]], genres_of: Callable[[int], Sequence[str]], k: int
) -> float:
    """Mean number of distinct genres in a top-k list."""
    if not lists:
        return 0.0
    counts = [len({g for m in items[:k] for g in genres_of(m)}) for items in lists.values()]
    return sum(counts) / len(counts)


def cap_compliance(
    lists: Mapping[int, Sequence[int]],
    genres_of: Callable[[int], Sequence[str]],
    cap: int,
    window: int,
) -> float:
    """Share of lists where no genre appears more than `cap` times in the first `window`."""
    from movierec.rules import Item, genre_cap_holds

    if not lists:
        return 0.0
    held = sum(
        genre_cap_holds([Item(m, 0.0, tuple(genres_of(m))) for m in items], cap, window)
        for items in lists.values()
    )
    return held / len(lists)


def system_report(
    lists: Mapping[int, Sequence[int]],
    relevant: Mapping[int, set[int]],
    k: int,
    genres_of: Callable[[int], Sequence[str]],
    catalog_size: int,
    cap: int,
    window: int,
) -> dict[str, float]:
    """The protocol's metrics (`models.evaluation`) plus coverage, diversity, cap compliance."""
    from models.evaluation.report import metrics_dict
    from models.metrics.ranking import ranking_metrics

    out: dict[str, float] = metrics_dict(ranking_metrics(lists, relevant, k))
    out["catalog_coverage"] = catalog_coverage(lists, catalog_size, k)
    out[f"genres_per_top{k}"] = genre_diversity(lists, genres_of, k)
    out["genre_cap_compliance"] = cap_compliance(lists, genres_of, cap, window)
    return out


# --- the replay ----------------------------------------------------------------------------------


async def replay(
    url: str, users: Sequence[int], k: int, concurrency: int = 1
) -> tuple[dict[int, list[int]], dict[str, Any]]:
    """Asks the API for every user's top k.

    Returns:
        (user -> movie ids in served order, {"requests", "seconds", "degraded",
        "cold_start", "fallbacks": {stage: count}, "model_versions"}).

    Raises:
        ServedQualityError: An answer is not 200, or not a valid recommendation list.
    """
    import httpx

    lists: dict[int, list[int]] = {}
    stats: dict[str, Any] = {"degraded": 0, "cold_start": 0, "fallbacks": {}}
    versions: set[str] = set()
    queue = list(users)
    started = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        while queue:
            user = queue.pop()
            response = await client.get(f"/recommendations/{user}", params={"k": k})
            if response.status_code != 200:
                raise ServedQualityError(
                    f"user {user}: HTTP {response.status_code}: {response.text[:300]}"
                )
            body = response.json()
            ids = [int(item["movie_id"]) for item in body["items"]]
            if len(set(ids)) != len(ids):
                raise ServedQualityError(f"user {user}: the answer repeats a movie: {ids}")
            lists[user] = ids
            versions.add(str(body.get("model_version")))
            stats["degraded"] += int(bool(body.get("degraded")))
            stats["cold_start"] += int(bool(body.get("cold_start")))
            for fallback in body.get("fallbacks") or []:
                stage = str(fallback.get("stage"))
                stats["fallbacks"][stage] = stats["fallbacks"].get(stage, 0) + 1

    async with httpx.AsyncClient(base_url=url, timeout=60.0) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    stats["requests"] = len(lists)
    stats["seconds"] = round(time.perf_counter() - started, 2)
    stats["model_versions"] = sorted(versions)
    return lists, stats


def offline_numbers(config: ServeConfig, k: int) -> dict[str, Any]:
    """`python -m models.evaluation --no-build` on the same artifacts, into a temp dir."""
    from deployments.app import AppArgs

    context = AppArgs.model_validate(config.args).context()
    with tempfile.TemporaryDirectory(prefix="movierec-offline-") as tmp:
        command = [
            sys.executable,
            "-m",
            "models.evaluation",
            "--no-build",
            "--variant",
            context.variant,
            "--artifacts-dir",
            str(context.artifacts_dir),
            "--out-dir",
            tmp,
            "--k",
            str(k),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        path = Path(tmp) / "quality.json"
        if done.returncode != 0 or not path.exists():
            raise ServedQualityError(
                f"the offline evaluation failed (status {done.returncode}): {done.stderr[-1500:]}"
            )
        report: dict[str, Any] = json.loads(path.read_text())
    return report


def rules_off(config: ServeConfig) -> ServeConfig:
    """The config with the Controller's post-rules disabled (no genre cap, no boosts)."""
    changed = ServeConfig(json.loads(json.dumps(config.raw)), config.path)
    for entry in changed.app.get("deployments") or []:
        if entry.get("name") == "Controller":
            rules = entry.setdefault("user_config", {}).setdefault("rules", {})
            rules.update(genre_cap=0, promoted_boost=0.0, recency_boost=0.0)
    return changed


def _wait_rules(url: str, genre_cap: int, timeout: float = 120.0) -> None:
    """Waits until the Controller reports the genre cap of the new user_config."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.get(f"{url}/healthz", timeout=10.0).json()
        if body["stages"]["controller"]["detail"].get("genre_cap") == genre_cap:
            return
        time.sleep(0.5)
    raise ServedQualityError(f"the Controller did not apply genre_cap={genre_cap} in time")


def run(
    config: ServeConfig, url: str | None, k: int, concurrency: int, with_offline: bool
) -> dict[str, Any]:
    """Runs the whole comparison (see the module doc) and returns the report."""
    import pandas as pd

    from deployments.app import AppArgs
    from deployments.catalog import Catalog
    from deployments.service import manifest_version
    from models.evaluation.popularity import popularity_recommendations
    from models.metrics.protocol import items_by_user

    context = AppArgs.model_validate(config.args).context()
    if context.mode != "eval":
        raise ServedQualityError("served quality needs the eval artifacts (mode: eval)")
    layout = context.layout
    train = pd.read_parquet(layout.splits_dir / "train.parquet")
    test = pd.read_parquet(layout.splits_dir / "test.parquet")
    relevant = items_by_user(test)
    users = sorted(u for u, items in relevant.items() if items)
    if not users:
        raise ServedQualityError(f"{layout.splits_dir}/test.parquet has no test users")
    catalog = Catalog.load(layout.catalog_dir)
    rules = config.user_config("Controller").get("rules") or {}
    cap, window = int(rules.get("genre_cap", 3)), int(rules.get("genre_window", 5))

    def genres_of(movie_id: int) -> Sequence[str]:
        movie = catalog.movies.get(movie_id)
        return movie.genres if movie is not None else ()

    def report_of(lists: Mapping[int, Sequence[int]]) -> dict[str, float]:
        return system_report(lists, relevant, k, genres_of, len(catalog), cap, window)

    expected_version = manifest_version(context)
    offline = offline_numbers(config, k) if with_offline else None
    served: dict[str, Any] = {}
    started = time.perf_counter()
    load_start = load_average()
    if url is not None:
        lists, stats = asyncio.run(replay(check_loopback(url), users, k, concurrency))
        served["as_deployed"] = {**report_of(lists), "replay": stats}
    else:
        port = free_port()
        with serve_in_process(config, port=port) as app_url:
            lists, stats = asyncio.run(replay(app_url, users, k, concurrency))
            served["rules_on"] = {**report_of(lists), "replay": stats}
            deploy(rules_off(config).with_overrides(port=port))
            _wait_rules(app_url, 0)
            wait_healthy(app_url)
            lists, stats = asyncio.run(replay(app_url, users, k, concurrency))
            served["rules_off"] = {**report_of(lists), "replay": stats}
    for name, result in served.items():
        if expected_version not in result["replay"]["model_versions"]:
            raise ServedQualityError(
                f"{name}: the app serves {result['replay']['model_versions']}, not the eval "
                f"tree's {expected_version}: point it at the eval artifacts"
            )
    popularity = report_of(popularity_recommendations(train, users, k))
    return {
        "benchmark": "served_quality",
        "created": utc_now(),
        "commit": git_commit(),
        "machine": machine_info(),
        "load_average": {"start": load_start, "end": load_average()},
        "setup": {
            "mode": "in-process Ray (private instance)" if url is None else "running app (--url)",
            "k": k,
            "users": len(users),
            "concurrency": concurrency,
            "genre_cap": cap,
            "genre_window": window,
            "model_version": expected_version,
            "artifacts": str(layout.root.resolve()),
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
        "served": served,
        "offline": None
        if offline is None
        else {
            "ranked": offline["systems"]["ranked"],
            "ranked_with_rules": offline["served_with_rules"],
            "artifacts": offline["artifacts"]["fingerprints"],
        },
        "popularity": popularity,
        "targets": check_targets(served, offline, k),
    }


def check_targets(
    served: Mapping[str, Any], offline: Mapping[str, Any] | None, k: int
) -> dict[str, dict[str, Any]]:
    """Issue #6's quality targets with the measured values (None: not measured)."""
    key = f"ndcg@{k}"
    off = served.get("rules_off")
    on = served.get("rules_on")
    ranked = None if offline is None else offline["systems"]["ranked"][key]
    gap = None if off is None or ranked is None else abs(off[key] - ranked)
    with_rules = None if offline is None else offline.get("served_with_rules", {}).get(key)
    gap_on = None if on is None or with_rules is None else abs(on[key] - with_rules)
    cost = None if off is None or on is None else off[key] - on[key]
    compliance = None if on is None else on["genre_cap_compliance"]
    return {
        "ndcg_gap_rules_off_vs_offline": {
            "value": gap,
            "max": NDCG_TOLERANCE,
            "met": None if gap is None else gap <= NDCG_TOLERANCE,
            "text": f"served nDCG@{k} (rules off) within {NDCG_TOLERANCE} of offline ranked",
        },
        "ndcg_gap_rules_on_vs_offline": {
            "value": gap_on,
            "max": NDCG_TOLERANCE,
            "met": None if gap_on is None else gap_on <= NDCG_TOLERANCE,
            "text": f"served nDCG@{k} (rules on) within {NDCG_TOLERANCE} of offline ranked + rules",
        },
        "ndcg_cost_of_rules": {
            "value": cost,
            "max": RULES_COST_MAX,
            "met": None if cost is None else cost <= RULES_COST_MAX,
            "text": f"rules on cost at most {RULES_COST_MAX} nDCG@{k}",
        },
        "genre_cap_kept": {
            "value": compliance,
            "min": 1.0,
            "met": None if compliance is None else compliance >= 1.0,
            "text": "every rules-on list keeps the genre cap",
        },
    }


def degraded_summary(served: Mapping[str, Any]) -> str:
    """ "rules_on 0; rules_off 2 (ranking 2)": each replay's degraded answers, by stage."""
    parts = []
    for name, result in served.items():
        replay = result.get("replay") or {}
        fallbacks = replay.get("fallbacks") or {}
        detail = ", ".join(f"{stage} {n}" for stage, n in sorted(fallbacks.items()))
        parts.append(f"{name} {replay.get('degraded', '?')}" + (f" ({detail})" if detail else ""))
    return "; ".join(parts) or "-"


def markdown_table(report: Mapping[str, Any]) -> str:
    """The README's `### Served quality` table, from `served_quality.json`."""
    setup = report["setup"]
    k = setup["k"]
    header = (
        f"Run {report.get('created', '?')} on {machine_summary(report.get('machine') or {})}; "
        f"{setup['users']} test users of the eval split, k={k}, model "
        f"`{setup['model_version']}`, genre cap {setup['genre_cap']} in the top "
        f"{setup['genre_window']}; {setup.get('concurrency', '?')} client(s), degraded "
        f"answers: {degraded_summary(report['served'])}."
    )
    cols = [
        f"ndcg@{k}",
        f"precision@{k}",
        f"recall@{k}",
        f"map@{k}",
        "catalog_coverage",
        f"genres_per_top{k}",
    ]
    head = (
        f"| system | nDCG@{k} | P@{k} | R@{k} | MAP@{k} | catalog coverage "
        f"| genres in top {k} |\n|---|---|---|---|---|---|---|"
    )
    rows = []
    labels = {
        "rules_off": "served, rules off",
        "rules_on": "served, rules on (genre cap)",
        "as_deployed": "served, rules as deployed",
    }
    for name, values in report["served"].items():
        rows.append((labels.get(name, name), values))
    if report.get("offline"):
        rows.append(("offline ranked (`make eval`)", report["offline"]["ranked"]))
        rows.append(("offline ranked + rules", report["offline"]["ranked_with_rules"]))
    rows.append(("popularity baseline", report["popularity"]))
    lines = [header, "", head]
    for label, values in rows:
        cells = " | ".join("-" if c not in values else f"{values[c]:.3f}" for c in cols)
        lines.append(f"| {label} | {cells} |")
    out = "\n".join(lines)
    targets = report.get("targets") or {}
    if targets:
        t_lines = ["| target | measured | met |", "|---|---|---|"]
        for t in targets.values():
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:.4f}"
            t_lines.append(f"| {t['text']} | {value} | {met} |")
        out += "\n\n" + "\n".join(t_lines)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Parses arguments, replays, writes the JSON; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.served_quality", description=__doc__
    )
    parser.add_argument("--url", help="a running app (rules as deployed only)")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=1, help="parallel clients")
    parser.add_argument("--no-offline", action="store_true", help="skip the offline numbers")
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    add_app_arguments(parser, with_mode=False)
    add_readme_arguments(parser, "served-quality table")
    args = parser.parse_args(argv)
    if args.render_only:
        return render(args.out_dir / SERVED_QUALITY_JSON, args.readme or Path("README.md"))
    try:
        if args.k < 1 or args.concurrency < 1:
            raise ServedQualityError("need --k >= 1 and --concurrency >= 1")
        overrides = {**app_overrides(args), "mode": "eval"}
        config = ServeConfig.load(args.config).with_overrides(args=overrides)
        report = run(config, args.url, args.k, args.concurrency, not args.no_offline)
        path = write_json(args.out_dir / SERVED_QUALITY_JSON, report)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 2
    except (ServedQualityError, StackError, LoadGenError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    print(f"wrote {path}")
    return 0 if args.readme is None else render(path, args.readme)


def render(json_path: Path, readme: Path) -> int:
    """Regenerates the README's served-quality table from `json_path`; returns the status."""
    return render_readme(
        json_path, readme, README_BEGIN, README_END, markdown_table, "served-quality table"
    )


if __name__ == "__main__":
    sys.exit(main())
