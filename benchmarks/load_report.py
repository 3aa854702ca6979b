"""Pure logic of the load benchmark's report: per-level summaries, goodput, CPU per answer by
process role, Serve/monolith ratios and the targets of issue #12 (`benchmarks.load_render`
draws the tables and the plot).

A level's raw result comes from `benchmarks.loadgen` (one closed-loop run); `summarize_level`
turns it into the numbers `load.json` keeps. **Goodput** is what the report judges: answers
per second with HTTP 200 and `"degraded": false` (no fallback at all, i.e. fully
personalized). RPS (every HTTP 200), the degraded share and the fallbacks that occurred (by
stage and reason) stay beside it. The per-stage breakdown is read from each answer's
`Server-Timing` header: the same `RequestTrace` timings the Controller records in the
`movierec_stage_latency_seconds` histogram, but per request, exact, and identical for the
Serve app and the monolith.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from benchmarks.common import percentiles

SYSTEMS: tuple[str, ...] = ("serve", "monolith", "monolith_n")
"""The Serve app, the monolith with one worker, the monolith with one worker per core."""

TARGETS: dict[str, dict[str, Any]] = {
    "p50_ratio_at_c1": {
        "max": 1.5,
        "issue": 12,
        "text": "c=1: Serve p50 <= 1.5x the 1-worker monolith's",
    },
    "cpu_ratio_at_c1": {
        "max": 1.3,
        "issue": 12,
        "text": "c=1: Serve CPU per goodput answer (idle subtracted) <= 1.3x the 1-worker "
        "monolith's",
    },
    "goodput_ratio_n_at_c16": {
        "min": 0.6,
        "issue": 12,
        "text": "c=16: Serve goodput >= 0.6x the N-worker monolith's",
    },
    "goodput_ratio_1_at_c16": {
        "min": 1.0,
        "issue": 12,
        "text": "c=16: Serve goodput >= 1.0x the 1-worker monolith's",
    },
    "degraded_share_at_c4": {
        "max": 0.01,
        "issue": 12,
        "text": "c=4: Serve degraded or failed share <= 1%",
    },
    "serve_p50_ms_at_c1": {"max": 15.0, "issue": 6, "text": "c=1: Serve p50 <= 15 ms"},
    "serve_goodput_at_c16": {"min": 150.0, "issue": 6, "text": "c=16: Serve goodput >= 150/s"},
    "serve_p99_ms_at_c16": {"max": 100.0, "issue": 6, "text": "c=16: Serve p99 <= 100 ms"},
    "serve_errors_at_c16": {"max": 0, "issue": 6, "text": "c=16: 0 Serve errors"},
}
"""The load targets (this 2-core machine): issue #12's, and issue #6's absolute ones."""

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


def count_fallbacks(entries: Iterable[str]) -> dict[str, dict[str, int]]:
    """{stage: {reason: answers}} from the generator's "stage:reason,stage:reason" strings.

    Example: ["content:timeout", "content:timeout,ranking:budget", ""]
    -> {"content": {"timeout": 2}, "ranking": {"budget": 1}}.
    """
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        for pair in filter(None, entry.split(",")):
            stage, _, reason = pair.partition(":")
            out[stage][reason or "unknown"] += 1
    return {stage: dict(sorted(r.items())) for stage, r in sorted(out.items())}


def _summary(values: Sequence[float]) -> dict[str, float | int] | None:
    return percentiles(values) if values else None


def cpu_by_role(
    cpu_s: Mapping[str, float],
    window_s: float,
    good: int,
    idle_cores: Mapping[str, float] | None = None,
) -> dict[str, dict[str, float | None]]:
    """CPU per role over a window, and per goodput answer with the idle share subtracted.

    Args:
        cpu_s: Role -> CPU seconds over the window.
        window_s: The window, seconds.
        good: Goodput answers in the window.
        idle_cores: Role -> cores the role uses with no traffic (None: nothing subtracted).

    Returns:
        {role: {"cores", "idle_cores", "net_ms_per_good"}}: net = max(cores - idle, 0) x
        window / good, in milliseconds (None without a goodput answer).

    Example: {"ranking": 0.5} over 1 s with 0.1 idle cores and 10 good answers ->
    {"ranking": {"cores": 0.5, "idle_cores": 0.1, "net_ms_per_good": 40.0}}.
    """
    idle = idle_cores or {}
    out: dict[str, dict[str, float | None]] = {}
    for role in sorted({*cpu_s, *idle}):
        cores = float(cpu_s.get(role, 0.0)) / window_s if window_s > 0 else 0.0
        idle_role = float(idle.get(role, 0.0))
        net = 1000.0 * max(cores - idle_role, 0.0) * window_s / good if good else None
        out[role] = {"cores": cores, "idle_cores": idle_role, "net_ms_per_good": net}
    return out


def summarize_level(
    raw: Mapping[str, Any], idle_cores: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """The numbers of one (system, concurrency) run.

    Args:
        raw: `benchmarks.loadgen` output: samples [latency_ms, status, degraded, timing,
            fallbacks, cold_start] (the last two optional), the window in seconds, the
            generator's CPU seconds, and optionally the machine's and the server processes'
            CPU (total and by role) and memory over the window.
        idle_cores: The system's idle CPU by role (cores), subtracted in the per-answer CPU.

    Returns:
        {"concurrency", "window_s", "requests", "ok", "errors", "error_rate", "rps" (HTTP 200
        answers/s), "good" and "goodput" (HTTP 200 and not degraded, count and per second),
        "degraded" (HTTP 200 with fallbacks), "degraded_share" (degraded or failed over all
        requests), "fallbacks" ({stage: {reason: n}}), "cold_start", "latency_ms"
        (percentiles of the HTTP 200 answers, None if none), "server_ms" (the server's own
        total), "overhead_ms" (client latency minus server total: HTTP, proxy, client),
        "stages" ({stage: percentiles}), "status_codes", "loadgen_cpu", "server_cpu" (with
        "ms_per_good", "net_ms_per_good" and "by_role", see `cpu_by_role`), "rss_bytes"
        (server processes' memory at the end, summed, and "by_role"), "machine_cpu_busy",
        "load_average"}.
    """
    samples = raw["samples"]
    window = float(raw["window_s"])
    ok = [s for s in samples if s[1] == 200]
    good = sum(1 for s in ok if not s[2])
    codes: dict[str, int] = defaultdict(int)
    for sample in samples:
        codes[str(sample[1])] += 1
    stages: dict[str, list[float]] = defaultdict(list)
    totals: list[float] = []
    overhead: list[float] = []
    for sample in ok:
        latency, timing = sample[0], sample[3]
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
    return {
        "concurrency": int(raw["concurrency"]),
        "window_s": window,
        "warmup_s": float(raw.get("warmup_s", 0.0)),
        "requests": requests,
        "ok": len(ok),
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "rps": len(ok) / window if window > 0 else 0.0,
        "good": good,
        "goodput": good / window if window > 0 else 0.0,
        "degraded": sum(1 for s in ok if s[2]),
        "degraded_share": (requests - good) / requests if requests else 0.0,
        "fallbacks": count_fallbacks(s[4] for s in ok if len(s) > 4 and s[2]),
        "cold_start": sum(1 for s in ok if len(s) > 5 and s[5]),
        "latency_ms": _summary([s[0] for s in ok]),
        "server_ms": _summary(totals),
        "overhead_ms": _summary(overhead),
        "stages": {stage: percentiles(values) for stage, values in sorted(stages.items())},
        "status_codes": dict(sorted(codes.items())),
        "loadgen_cpu": {
            "cores": cpu_s / window if window > 0 else 0.0,
            "ms_per_request": 1000.0 * cpu_s / requests if requests else None,
        },
        "server_cpu": _server_cpu(raw, window, requests, good, idle_cores),
        "rss_bytes": _rss(raw),
        "machine_cpu_busy": raw.get("machine_cpu_busy"),
        "load_average": raw.get("load_average"),
    }


def _server_cpu(
    raw: Mapping[str, Any],
    window: float,
    requests: int,
    good: int,
    idle_cores: Mapping[str, float] | None,
) -> dict[str, Any] | None:
    server_cpu = raw.get("server_cpu_s")
    if server_cpu is None:
        return None
    roles = cpu_by_role(raw.get("server_cpu_by_role") or {}, window, good, idle_cores)
    net = [r["net_ms_per_good"] for r in roles.values()]
    return {
        "cores": float(server_cpu) / window if window > 0 else 0.0,
        "ms_per_request": 1000.0 * float(server_cpu) / requests if requests else None,
        "ms_per_good": 1000.0 * float(server_cpu) / good if good else None,
        "net_ms_per_good": math.fsum(n for n in net if n is not None) if good else None,
        "idle_subtracted": idle_cores is not None,
        "by_role": roles,
        "pids": len(raw.get("server_pids") or []),
    }


def _rss(raw: Mapping[str, Any]) -> dict[str, Any] | None:
    by_role = raw.get("server_rss_by_role")
    if not by_role:
        return None
    return {"total": sum(by_role.values()), "by_role": dict(by_role)}


def level(levels: Iterable[Mapping[str, Any]], concurrency: int) -> Mapping[str, Any] | None:
    """The level of a given concurrency, or None."""
    return next((lv for lv in levels if lv["concurrency"] == concurrency), None)


def goodput_of(lv: Mapping[str, Any] | None) -> float | None:
    """A level's goodput; derived from its RPS and degraded count for reports written
    before goodput was recorded."""
    if lv is None:
        return None
    if "goodput" in lv:
        return float(lv["goodput"])
    window = float(lv.get("window_s") or 0.0)
    if window <= 0:
        return None
    return max(float(lv["rps"]) - int(lv.get("degraded", 0)) / window, 0.0)


def _p50(lv: Mapping[str, Any] | None) -> float | None:
    if lv is None or lv.get("latency_ms") is None:
        return None
    return float(lv["latency_ms"]["p50_ms"])


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _net_cpu(lv: Mapping[str, Any] | None) -> float | None:
    cpu = None if lv is None else lv.get("server_cpu")
    if not cpu or cpu.get("net_ms_per_good") is None:
        return None
    return float(cpu["net_ms_per_good"])


def ratios(
    serve: Sequence[Mapping[str, Any]],
    monolith: Sequence[Mapping[str, Any]],
    monolith_n: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Serve over each monolith, at each concurrency Serve and the 1-worker monolith ran:
    p50, RPS, goodput and net CPU per goodput answer."""
    out = []
    for lv in serve:
        other = level(monolith, lv["concurrency"])
        if other is None:
            continue
        wide = level(monolith_n, lv["concurrency"])
        out.append(
            {
                "concurrency": lv["concurrency"],
                "p50_serve_over_monolith": _ratio(_p50(lv), _p50(other)),
                "rps_serve_over_monolith": _ratio(lv["rps"], other["rps"]),
                "goodput_serve_over_monolith": _ratio(goodput_of(lv), goodput_of(other)),
                "goodput_serve_over_monolith_n": _ratio(goodput_of(lv), goodput_of(wide)),
                "cpu_serve_over_monolith": _ratio(_net_cpu(lv), _net_cpu(other)),
            }
        )
    return out


def check_targets(
    serve: Sequence[Mapping[str, Any]],
    monolith: Sequence[Mapping[str, Any]],
    monolith_n: Sequence[Mapping[str, Any]] = (),
) -> dict[str, dict[str, Any]]:
    """Each target of `TARGETS` with the measured value and whether it is met (None when the
    run did not measure it)."""
    c1, c4, c16 = level(serve, 1), level(serve, 4), level(serve, 16)
    m1, m16, n16 = level(monolith, 1), level(monolith, 16), level(monolith_n, 16)
    values: dict[str, float | None] = {
        "p50_ratio_at_c1": _ratio(_p50(c1), _p50(m1)),
        "cpu_ratio_at_c1": _ratio(_net_cpu(c1), _net_cpu(m1)),
        "goodput_ratio_n_at_c16": _ratio(goodput_of(c16), goodput_of(n16)),
        "goodput_ratio_1_at_c16": _ratio(goodput_of(c16), goodput_of(m16)),
        "degraded_share_at_c4": None if c4 is None else degraded_share(c4),
        "serve_p50_ms_at_c1": _p50(c1),
        "serve_goodput_at_c16": goodput_of(c16),
        "serve_p99_ms_at_c16": None
        if c16 is None or c16.get("latency_ms") is None
        else float(c16["latency_ms"]["p99_ms"]),
        "serve_errors_at_c16": None if c16 is None else float(c16["errors"]),
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
        out[name] = {
            "value": value,
            **bound,
            "met": met,
            "issue": target["issue"],
            "text": target["text"],
        }
    return out


def degraded_share(lv: Mapping[str, Any]) -> float:
    """A level's degraded or failed share of requests (derived for older reports)."""
    if "degraded_share" in lv:
        return float(lv["degraded_share"])
    requests = int(lv.get("requests") or 0)
    bad = int(lv.get("degraded", 0)) + int(lv.get("errors", 0))
    return bad / requests if requests else 0.0
