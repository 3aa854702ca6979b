"""The load benchmark's README tables and plot, drawn from `load.json` (pure: no services).

Reports written before goodput, the N-worker monolith, the capacity search and the CPU by
role were recorded render with those parts derived (goodput from RPS and degraded answers)
or left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import machine_summary
from benchmarks.load_report import SYSTEMS, degraded_share, goodput_of, level, ratios
from benchmarks.processes import ROLE_LABELS, ROLES

README_BEGIN = "<!-- load-table:begin (python -m benchmarks.load --render-only) -->"
README_END = "<!-- load-table:end -->"
REPLICA_ORDER = ("Controller", "Retrieval", "Features", "Content", "Ranking")
MIB = 2**20


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def system_label(name: str, report: Mapping[str, Any]) -> str:
    """ "Serve", "monolith x1", "monolith x2" (the N-worker one's N from the setup)."""
    if name == "serve":
        return "Serve"
    if name == "monolith":
        return "monolith x1"
    workers = (report.get("setup") or {}).get("monolith_workers")
    return f"monolith x{workers or 'N'}"


def _levels(report: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    levels: list[Mapping[str, Any]] = report["systems"].get(name, {}).get("levels", [])
    return levels


def markdown_tables(report: Mapping[str, Any]) -> str:
    """The README's `### Load` tables, from `load.json`."""
    out = [_header(report), _level_table(report)]
    for part in (
        _fallback_table(report),
        _ratio_table(report),
        _stage_table(report),
        _floor_table(report.get("floor")),
        _cpu_table(report),
        _capacity_table(report),
        _target_table(report.get("targets") or {}),
    ):
        if part:
            out.append(part)
    return "\n\n".join(out)


def _header(report: Mapping[str, Any]) -> str:
    setup = report.get("setup") or {}
    loads = report.get("load_average") or {}
    tool = setup.get("tool") or {}
    text = (
        f"Run {report.get('created', '?')} on {machine_summary(report.get('machine') or {})}; "
        f"1/5/15-min load average {loads.get('start')} at the start, {loads.get('end')} at "
        f"the end. {setup.get('warmup_s')} s warm-up + {setup.get('duration_s')} s recorded "
        f"per level and system, closed loop, {setup.get('users')} real users, "
        f"`{setup.get('endpoint')}`, load generator: {tool.get('name')} "
        f"{tool.get('version')} FastHttpUser; Serve mode: "
        f"{setup.get('serve_mode', 'unknown')}."
    )
    if setup.get("idle_s"):
        text += (
            f" Idle CPU measured over {setup['idle_s']} s with no traffic before the levels, "
            "and subtracted from the CPU per goodput answer."
        )
    return text


def _level_table(report: Mapping[str, Any]) -> str:
    lines = [
        "| system | concurrency | goodput/s | RPS | degraded or failed | p50 ms | p95 ms "
        "| p99 ms | errors | server CPU ms per goodput answer (net of idle) | RSS MiB "
        "| replicas C/R/F/V/K |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in SYSTEMS:
        label = system_label(name, report)
        for lv in _levels(report, name):
            lat = lv.get("latency_ms") or {}
            cpu = (lv.get("server_cpu") or {}).get("net_ms_per_good")
            rss = (lv.get("rss_bytes") or {}).get("total")
            lines.append(
                f"| {label} | {lv['concurrency']} | {_fmt(goodput_of(lv), 0)} "
                f"| {lv['rps']:.0f} | {degraded_share(lv):.1%} | {_fmt(lat.get('p50_ms'))} "
                f"| {_fmt(lat.get('p95_ms'))} | {_fmt(lat.get('p99_ms'))} | {lv['errors']} "
                f"| {_fmt(cpu)} | {_fmt(None if rss is None else rss / MIB, 0)} "
                f"| {_replicas(lv.get('replicas'))} |"
            )
    return "\n".join(lines)


def _fallback_table(report: Mapping[str, Any]) -> str:
    rows = []
    for name in SYSTEMS:
        for lv in _levels(report, name):
            found = lv.get("fallbacks") or {}
            pairs = sorted(
                ((n, f"{stage}/{reason}") for stage, r in found.items() for reason, n in r.items()),
                reverse=True,
            )
            if pairs:
                text = ", ".join(f"{pair}: {n}" for n, pair in pairs)
                rows.append(f"| {system_label(name, report)} | {lv['concurrency']} | {text} |")
    if not rows:
        return ""
    head = "| system | concurrency | fallbacks in degraded answers (stage/reason: answers) |"
    return "\n".join([head, "|---|---|---|", *rows])


def _ratio_table(report: Mapping[str, Any]) -> str:
    # recomputed from the levels, so reports from before goodput get its ratios too
    found = ratios(*(_levels(report, name) for name in SYSTEMS))
    if not found:
        return ""
    wide = system_label("monolith_n", report)
    rows = [
        "| concurrency | p50 Serve/monolith x1 | goodput Serve/monolith x1 "
        f"| goodput Serve/{wide} | CPU per goodput answer Serve/monolith x1 |",
        "|---|---|---|---|---|",
    ]
    for r in found:
        rows.append(
            f"| {r['concurrency']} | {_fmt(r['p50_serve_over_monolith'], 2)} "
            f"| {_fmt(r.get('goodput_serve_over_monolith'), 2)} "
            f"| {_fmt(r.get('goodput_serve_over_monolith_n'), 2)} "
            f"| {_fmt(r.get('cpu_serve_over_monolith'), 2)} |"
        )
    return "\n".join(rows)


def _replicas(counts: Mapping[str, int] | None) -> str:
    """Running replicas per deployment at the end of a level, e.g. "1/2/1/1/1"."""
    if not counts:
        return "-"
    return "/".join(str(counts.get(name, 0)) for name in REPLICA_ORDER)


def _stage_table(report: Mapping[str, Any]) -> str:
    """p50 of each stage at concurrency 1, Serve next to the 1-worker monolith."""
    serve = level(_levels(report, "serve"), 1)
    mono = level(_levels(report, "monolith"), 1)
    if serve is None:
        return ""
    names = list(serve["stages"])
    if mono is not None:
        names += [n for n in mono["stages"] if n not in names]
    rows = [
        "| at concurrency 1, p50 ms (share of requests calling it) | Serve | monolith x1 |",
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


def _floor_table(floor: Mapping[str, Any] | None) -> str:
    if not floor:
        return ""
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


def cpu_columns(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(column title, level) for the CPU table: every system at concurrency 1 and 16 (the
    lowest and highest level when those did not run), where the CPU by role was recorded."""
    out = []
    for name in SYSTEMS:
        levels = [lv for lv in _levels(report, name) if (lv.get("server_cpu") or {}).get("by_role")]
        if not levels:
            continue
        first = level(levels, 1) or levels[0]
        last = level(levels, 16) or levels[-1]
        for lv in (first,) if last is first else (first, last):
            out.append((f"{system_label(name, report)} c={lv['concurrency']}", lv))
    return out


def _cpu_table(report: Mapping[str, Any]) -> str:
    """CPU ms per goodput answer by process role (net of each role's idle share)."""
    columns = cpu_columns(report)
    if not columns:
        return ""
    present = {role for _, lv in columns for role in lv["server_cpu"]["by_role"]}
    head = "| CPU ms per goodput answer, net of idle | " + " | ".join(t for t, _ in columns)
    rows = [head + " |", "|---" * (len(columns) + 1) + "|"]
    for role in [r for r in ROLES if r in present]:
        cells = [
            _fmt(lv["server_cpu"]["by_role"].get(role, {}).get("net_ms_per_good"), 2)
            for _, lv in columns
        ]
        rows.append(f"| {ROLE_LABELS[role]} | " + " | ".join(cells) + " |")
    totals = [_fmt(lv["server_cpu"].get("net_ms_per_good"), 2) for _, lv in columns]
    gross = [_fmt(lv["server_cpu"].get("ms_per_good"), 2) for _, lv in columns]
    idle = [
        _fmt(sum(r.get("idle_cores") or 0.0 for r in lv["server_cpu"]["by_role"].values()), 2)
        for _, lv in columns
    ]
    rows.append("| **total, net of idle** | " + " | ".join(totals) + " |")
    rows.append("| total with idle (ms per goodput answer) | " + " | ".join(gross) + " |")
    rows.append("| idle share subtracted (cores, no traffic) | " + " | ".join(idle) + " |")
    return "\n".join(rows)


def _capacity_table(report: Mapping[str, Any]) -> str:
    found = report.get("capacity") or {}
    if not found:
        return ""
    criteria = next(iter(found.values())).get("criteria") or {}
    rows = [
        f"| open loop: fully personalized capacity (<= {criteria.get('max_bad_share', 0):.0%} "
        f"degraded or failed, p99 <= {criteria.get('p99_budget_ms')} ms) | capacity, requests/s "
        "| goodput/s there | p99 ms there | lowest failing rate | probes | stopped by |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in SYSTEMS:
        result = found.get(name)
        if not result:
            continue
        best: Mapping[str, Any] = max(
            (p for p in result["probes"] if p.get("passed")),
            key=lambda p: p["rate"],
            default={},
        )
        rows.append(
            f"| {system_label(name, report)} | {result['capacity_rps']:.0f} "
            f"| {_fmt(best.get('goodput'), 0)} | {_fmt(best.get('p99_ms'))} "
            f"| {_fmt(result.get('lowest_failing_rps'), 0)} | {len(result['probes'])} "
            f"| {result['stopped_by']} |"
        )
    return "\n".join(rows)


def _target_table(targets: Mapping[str, Any]) -> str:
    if not targets:
        return ""
    rows = ["| target | measured | met |", "|---|---|---|"]
    for t in targets.values():
        met = {True: "yes", False: "**no**", None: "not measured"}[t["met"]]
        rows.append(f"| {t['text']} | {_fmt(t['value'], 2)} | {met} |")
    return "\n".join(rows)


def _mean_per_request(lv: Mapping[str, Any], stage: str) -> float:
    """A stage's time per answered request: its mean call time x the share calling it."""
    stats = lv["stages"].get(stage)
    if not stats or not lv["ok"]:
        return 0.0
    return float(stats["mean_ms"]) * int(stats["n"]) / int(lv["ok"])


STYLES: dict[str, str] = {"serve": "tab:blue", "monolith": "tab:orange", "monolith_n": "tab:green"}


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Latency vs goodput (p50 and p99 against fully personalized answers per second, one
    point per concurrency; the open-loop capacity as a dotted line) for every system, and the
    per-stage p50 breakdown at concurrency 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [3, 2]})
    for name, color in STYLES.items():
        label = system_label(name, report)
        levels = [lv for lv in _levels(report, name) if lv["ok"]]
        if not levels:
            continue
        goodput = [goodput_of(lv) or 0.0 for lv in levels]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            ax.plot(
                goodput,
                [lv["latency_ms"][key] for lv in levels],
                style,
                color=color,
                label=f"{label} {key[:3]}",
            )
        for x, lv in zip(goodput, levels, strict=True):
            ax.annotate(
                f"c={lv['concurrency']}",
                (x, lv["latency_ms"]["p50_ms"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )
        capacity = ((report.get("capacity") or {}).get(name) or {}).get("capacity_rps")
        if capacity:
            ax.axvline(capacity, color=color, linestyle=":", linewidth=1.2)
    ax.set_xlabel("goodput (fully personalized answers/s; dotted: open-loop capacity)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title("GET /recommendations: latency vs goodput (closed loop)")
    ax.legend(fontsize=8)
    _stage_bars(bx, report, plt)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _stage_bars(bx: Any, report: Mapping[str, Any], plt: Any) -> None:
    serve = level(_levels(report, "serve"), 1)
    mono = level(_levels(report, "monolith"), 1)
    bars: Sequence[tuple[str, Mapping[str, Any]]] = [
        (n, lv) for n, lv in (("Ray Serve", serve), ("monolith x1", mono)) if lv is not None
    ]
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
    bx.set_title("time per stage at concurrency 1\n(retrieval, content, features run together)")
    bx.legend(fontsize=7)
