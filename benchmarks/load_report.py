"""Pure logic of the load benchmark's report: per-level summaries, Serve/monolith ratios, the
targets of issue #6, the plot and the README table.

A level's raw result comes from `benchmarks.loadgen` (one closed-loop run); `summarize_level`
turns it into the numbers `load.json` keeps. The per-stage breakdown is read from each
answer's `Server-Timing` header: the same `RequestTrace` timings the Controller records in the
`movierec_stage_latency_seconds` histogram, but per request, exact, and identical for the Serve
app and the monolith (Ray exports replica metrics only every few seconds, which would smear
the boundaries between levels).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import machine_summary, percentiles

SYSTEMS: tuple[str, ...] = ("serve", "monolith")

TARGETS: dict[str, dict[str, Any]] = {
    "serve_p50_ms_at_c1": {"max": 15.0, "text": "served p50 <= 15 ms at concurrency 1"},
    "serve_rps_at_c16": {"min": 150.0, "text": ">= 150 RPS at concurrency 16"},
    "serve_p99_ms_at_c16": {"max": 100.0, "text": "p99 <= 100 ms at concurrency 16"},
    "serve_errors_at_c16": {"max": 0, "text": "0 errors at concurrency 16"},
    "p50_ratio_at_c1": {"max": 2.0, "text": "Serve/monolith p50 ratio <= 2.0 at concurrency 1"},
    "rps_ratio_at_c16": {"min": 0.8, "text": "Serve RPS >= 0.8x the monolith at concurrency 16"},
}
"""Issue #6's load targets (this 2-core machine)."""

_TIMING = re.compile(r"\s*([A-Za-z0-9_.-]+)\s*(?:;[^,]*?dur=([0-9.eE+-]+))?[^,]*")


def parse_server_timing(header: str) -> dict[str, float]:
    """`Server-Timing` -> {name: milliseconds}; entries without a `dur` are skipped.

    Example: "features;dur=2.10, total;dur=9.5" -> {"features": 2.1, "total": 9.5}.
    """
    out: dict[str, float] = {}
    for part in header.split(","):
        match = _TIMING.fullmatch(part)
        if match is None or match.group(2) is None:
            continue
        try:
            value = float(match.group(2))
        except ValueError:
            continue
        if math.isfinite(value):
            out[match.group(1)] = value
    return out


def _summary(values: Sequence[float]) -> dict[str, float | int] | None:
    return percentiles(values) if values else None


def summarize_level(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The numbers of one (system, concurrency) run.

    Args:
        raw: `benchmarks.loadgen` output: samples [latency_ms, status, degraded, timing], the
            window in seconds, the generator's CPU seconds, and optionally the machine's and
            the server processes' CPU over the window.

    Returns:
        {"concurrency", "window_s", "requests", "ok", "errors", "error_rate", "rps",
        "degraded", "latency_ms" (percentiles of the successful requests, None if none),
        "server_ms" (the server's own total), "overhead_ms" (client latency minus server
        total: HTTP, proxy, client), "stages" ({stage: percentiles}), "status_codes",
        "loadgen_cpu", "server_cpu", "machine_cpu_busy", "load_average"}.
    """
    samples = raw["samples"]
    window = float(raw["window_s"])
    ok = [s for s in samples if s[1] == 200]
    codes: dict[str, int] = defaultdict(int)
    for sample in samples:
        codes[str(sample[1])] += 1
    stages: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    overhead: list[float] = []
    for latency, _, _, timing in ok:
        parsed = parse_server_timing(timing)
        total = parsed.pop("total", None)
        for stage, value in parsed.items():
            stages[stage].append(value)
        if total is not None:
            totals.append(total)
            overhead.append(max(latency - total, 0.0))
    requests = len(samples)
    errors = requests - len(ok)
    cpu_s = float(raw.get("cpu_s", 0.0))
    server_cpu = raw.get("server_cpu_s")
    return {
        "concurrency": int(raw["concurrency"]),
        "window_s": window,
        "warmup_s": float(raw.get("warmup_s", 0.0)),
        "requests": requests,
        "ok": len(ok),
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "rps": len(ok) / window if window > 0 else 0.0,
        "degraded": sum(1 for s in ok if s[2]),
        "latency_ms": _summary([s[0] for s in ok]),
        "server_ms": _summary(totals),
        "overhead_ms": _summary(overhead),
        "stages": {stage: percentiles(values) for stage, values in sorted(stages.items())},
        "status_codes": dict(sorted(codes.items())),
        "loadgen_cpu": {
            "cores": cpu_s / window if window > 0 else 0.0,
            "ms_per_request": 1000.0 * cpu_s / requests if requests else None,
        },
        "server_cpu": None
        if server_cpu is None
        else {
            "cores": float(server_cpu) / window if window > 0 else 0.0,
            "ms_per_request": 1000.0 * float(server_cpu) / requests if requests else None,
            "pids": len(raw.get("server_pids") or []),
        },
        "machine_cpu_busy": raw.get("machine_cpu_busy"),
        "load_average": raw.get("load_average"),
    }


def level(levels: Iterable[Mapping[str, Any]], concurrency: int) -> Mapping[str, Any] | None:
    """The level of a given concurrency, or None."""
    return next((lv for lv in levels if lv["concurrency"] == concurrency), None)


def _p50(lv: Mapping[str, Any] | None) -> float | None:
    if lv is None or lv.get("latency_ms") is None:
        return None
    return float(lv["latency_ms"]["p50_ms"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ratios(
    serve: Sequence[Mapping[str, Any]], monolith: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Serve/monolith p50 and RPS ratios at each concurrency both ran."""
    out = []
    for lv in serve:
        other = level(monolith, lv["concurrency"])
        if other is None:
            continue
        out.append(
            {
                "concurrency": lv["concurrency"],
                "p50_serve_over_monolith": _ratio(_p50(lv), _p50(other)),
                "rps_serve_over_monolith": _ratio(lv["rps"], other["rps"]),
            }
        )
    return out


def check_targets(
    serve: Sequence[Mapping[str, Any]], monolith: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each target of `TARGETS` with the measured value and whether it is met (None when the
    run did not measure it)."""
    c1, c16 = level(serve, 1), level(serve, 16)
    m1, m16 = level(monolith, 1), level(monolith, 16)
    values: dict[str, float | None] = {
        "serve_p50_ms_at_c1": _p50(c1),
        "serve_rps_at_c16": None if c16 is None else float(c16["rps"]),
        "serve_p99_ms_at_c16": None
        if c16 is None or c16.get("latency_ms") is None
        else float(c16["latency_ms"]["p99_ms"]),
        "serve_errors_at_c16": None if c16 is None else float(c16["errors"]),
        "p50_ratio_at_c1": _ratio(_p50(c1), _p50(m1)),
        "rps_ratio_at_c16": None
        if c16 is None or m16 is None
        else _ratio(float(c16["rps"]), float(m16["rps"])),
    }
    out = {}
    for name, target in TARGETS.items():
        value = values[name]
        if value is None:
            met = None
        elif "max" in target:
            met = value <= target["max"]
        else:
            met = value >= target["min"]
        bound = {k: v for k, v in target.items() if k in ("max", "min")}
        out[name] = {"value": value, **bound, "met": met, "text": target["text"]}
    return out


# --- presentation ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


README_BEGIN = "<!-- load-table:begin (python -m benchmarks.load --render-only) -->"
README_END = "<!-- load-table:end -->"


def markdown_tables(report: Mapping[str, Any]) -> str:
    """The README's `### Load` tables, from `load.json`."""
    systems = report["systems"]
    setup = report.get("setup") or {}
    loads = report.get("load_average") or {}
    header = (
        f"Run {report.get('created', '?')} on {machine_summary(report.get('machine') or {})}; "
        f"1/5/15-min load average {loads.get('start')} at the start, {loads.get('end')} at "
        f"the end. {setup.get('warmup_s')} s warm-up + {setup.get('duration_s')} s recorded "
        f"per level and system, closed loop, {setup.get('users')} real users, "
        f"`{setup.get('endpoint')}`, load generator: {(setup.get('tool') or {}).get('name')} "
        f"{(setup.get('tool') or {}).get('version')} FastHttpUser; Serve mode: "
        f"{setup.get('serve_mode', 'unknown')}."
    )
    lines = [
        "| system | concurrency | RPS | p50 ms | p95 ms | p99 ms | errors | degraded |"
        " server ms (p50) | server CPU ms/req | replicas C/R/F/V/K |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SYSTEMS:
        for lv in systems.get(name, {}).get("levels", []):
            lat = lv.get("latency_ms") or {}
            server = lv.get("server_ms") or {}
            cpu = (lv.get("server_cpu") or {}).get("ms_per_request")
            lines.append(
                f"| {name} | {lv['concurrency']} | {lv['rps']:.0f} | {_fmt(lat.get('p50_ms'))} "
                f"| {_fmt(lat.get('p95_ms'))} | {_fmt(lat.get('p99_ms'))} | {lv['errors']} "
                f"| {lv['degraded']} | {_fmt(server.get('p50_ms'))} | {_fmt(cpu)} "
                f"| {_replicas(lv.get('replicas'))} |"
            )
    out = [header, "\n".join(lines)]
    if report.get("ratios"):
        rows = ["| concurrency | p50 Serve/monolith | RPS Serve/monolith |", "|---|---|---|"]
        for r in report["ratios"]:
            rows.append(
                f"| {r['concurrency']} | {_fmt(r['p50_serve_over_monolith'], 2)} "
                f"| {_fmt(r['rps_serve_over_monolith'], 2)} |"
            )
        out.append("\n".join(rows))
    stage_table = _stage_table(report)
    if stage_table:
        out.append(stage_table)
    if report.get("floor"):
        out.append(_floor_table(report["floor"]))
    targets = report.get("targets") or {}
    if targets:
        rows = ["| target | measured | met |", "|---|---|---|"]
        for t in targets.values():
            met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
            rows.append(f"| {t['text']} | {_fmt(t['value'], 2)} | {met} |")
        out.append("\n".join(rows))
    return "\n\n".join(out)


REPLICA_ORDER = ("Controller", "Retrieval", "Features", "Content", "Ranking")


def _replicas(counts: Mapping[str, int] | None) -> str:
    """Running replicas per deployment at the end of a level, e.g. "1/2/1/1/1"."""
    if not counts:
        return "-"
    return "/".join(str(counts.get(name, 0)) for name in REPLICA_ORDER)


def _stage_table(report: Mapping[str, Any]) -> str:
    """p50 of each stage at concurrency 1, Serve next to the monolith."""
    systems = report["systems"]
    serve = level(systems.get("serve", {}).get("levels", []), 1)
    mono = level(systems.get("monolith", {}).get("levels", []), 1)
    if serve is None:
        return ""
    names = list(serve["stages"])
    if mono is not None:
        names += [n for n in mono["stages"] if n not in names]
    rows = [
        "| at concurrency 1, p50 ms (share of requests calling it) | Serve | monolith |",
        "|---|---|---|",
    ]
    for stage in names:
        s = serve["stages"].get(stage, {}).get("p50_ms")
        m = None if mono is None else mono["stages"].get(stage, {}).get("p50_ms")
        calls = serve["stages"].get(stage, {}).get("n", 0)
        ratio = calls / serve["ok"] if serve["ok"] else 1.0
        share = f" ({ratio:.1%})" if ratio < 0.95 else ""
        rows.append(f"| stage `{stage}`{share} | {_fmt(s, 2)} | {_fmt(m, 2)} |")
    for key, label in (("server_ms", "server total"), ("overhead_ms", "HTTP + proxy + client")):
        s = (serve.get(key) or {}).get("p50_ms")
        m = None if mono is None else (mono.get(key) or {}).get("p50_ms")
        rows.append(f"| {label} | {_fmt(s, 2)} | {_fmt(m, 2)} |")
    return "\n".join(rows)


def _floor_table(floor: Mapping[str, Any]) -> str:
    rows = ["| in-process compute floor (no HTTP, no hops) | p50 ms | p99 ms |", "|---|---|---|"]
    rec = floor.get("recommend") or {}
    rows.append(
        f"| `service.recommend` (in process) | {_fmt(rec.get('p50_ms'), 2)} "
        f"| {_fmt(rec.get('p99_ms'), 2)} |"
    )
    for name, stats in (floor.get("stage_calls") or {}).items():
        rows.append(
            f"| `{name}` alone | {_fmt(stats.get('p50_ms'), 2)} | {_fmt(stats.get('p99_ms'), 2)} |"
        )
    return "\n".join(rows)


def _mean_per_request(lv: Mapping[str, Any], stage: str) -> float:
    """A stage's time per answered request: its mean call time x the share calling it."""
    stats = lv["stages"].get(stage)
    if not stats or not lv["ok"]:
        return 0.0
    return float(stats["mean_ms"]) * int(stats["n"]) / int(lv["ok"])


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Latency vs throughput (p50 and p99 against RPS, one point per concurrency) for both
    systems, and the per-stage p50 breakdown at concurrency 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    styles = {"serve": ("tab:blue", "Ray Serve"), "monolith": ("tab:orange", "monolith")}
    for name, (color, label) in styles.items():
        levels = [lv for lv in report["systems"].get(name, {}).get("levels", []) if lv["ok"]]
        if not levels:
            continue
        rps = [lv["rps"] for lv in levels]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            ax.plot(
                rps,
                [lv["latency_ms"][key] for lv in levels],
                style,
                color=color,
                label=f"{label} {key[:3]}",
            )
        for lv in levels:
            ax.annotate(
                f"c={lv['concurrency']}",
                (lv["rps"], lv["latency_ms"]["p50_ms"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )
    ax.set_xlabel("throughput (requests/s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("GET /recommendations: latency vs throughput (closed loop)")
    ax.legend(fontsize=8)

    serve = level(report["systems"].get("serve", {}).get("levels", []), 1)
    mono = level(report["systems"].get("monolith", {}).get("levels", []), 1)
    bars = [(n, lv) for n, lv in (("Ray Serve", serve), ("monolith", mono)) if lv is not None]
    stage_names: list[str] = []
    for _, lv in bars:
        stage_names += [s for s in lv["stages"] if s not in stage_names]
    for i, (_, lv) in enumerate(bars):
        parts = [(s, _mean_per_request(lv, s)) for s in stage_names]
        parts.append(("HTTP + proxy + client", (lv.get("overhead_ms") or {}).get("mean_ms", 0.0)))
        bottom = 0.0
        for j, (stage, value) in enumerate(parts):
            bx.bar(
                i,
                value,
                bottom=bottom,
                color=plt.get_cmap("tab20")(j),
                label=stage if i == 0 else None,
            )
            bottom += value
    bx.set_xticks(range(len(bars)), [n for n, _ in bars])
    bx.set_ylabel("mean ms per request, stacked")
    bx.set_title("time per stage at concurrency 1\n(retrieval runs beside features + content)")
    bx.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
