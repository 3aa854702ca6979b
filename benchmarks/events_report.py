"""The event benchmark's numbers (`benchmarks.events`): one level's summary, the README table
and the PNG, from the raw samples. No Ray, no Redis, no project imports beyond the benchmarks'
own helpers, so the tests exercise it without services.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import machine_summary, percentiles

GET_KEYS = (
    "requests",
    "ok",
    "errors",
    "rps",
    "degraded",
    "degraded_share",
    "fallbacks",
    "latency_ms",
    "status_codes",
    "load_average",
    "machine_cpu_busy",
)
"""What a level keeps of `benchmarks.load_report.summarize_level` for its GET traffic."""


def summarize_posts(
    posts: Sequence[Sequence[Any]], window_s: float, batch: int, concurrency: int
) -> dict[str, Any]:
    """The ingestion numbers of one level.

    Args:
        posts: One sample per POST completed in the recorded window: [latency_ms, status,
            events sent, accepted, duplicates]; status 0 is a transport error.
        window_s: The recorded window (seconds).
        batch: Events per request.
        concurrency: Parallel posting clients.

    Returns:
        {"batch", "concurrency", "window_s", "requests", "ok", "errors", "status_codes",
        "events" (acknowledged: in 202 answers), "accepted", "duplicates",
        "events_per_s" (acknowledged events per second), "requests_per_s",
        "latency_ms" (percentiles of the 202 answers, None without any)}.
    """
    codes: dict[str, int] = defaultdict(int)
    for sample in posts:
        codes[str(sample[1])] += 1
    ok = [s for s in posts if s[1] == 202]
    acknowledged = sum(int(s[2]) for s in ok)
    return {
        "batch": batch,
        "concurrency": concurrency,
        "window_s": window_s,
        "requests": len(posts),
        "ok": len(ok),
        "errors": len(posts) - len(ok),
        "status_codes": dict(sorted(codes.items())),
        "events": acknowledged,
        "accepted": sum(int(s[3]) for s in ok),
        "duplicates": sum(int(s[4]) for s in ok),
        "events_per_s": acknowledged / window_s if window_s > 0 else 0.0,
        "requests_per_s": len(ok) / window_s if window_s > 0 else 0.0,
        "latency_ms": percentiles([float(s[0]) for s in ok]) if ok else None,
    }


def get_summary(level: Mapping[str, Any]) -> dict[str, Any]:
    """The GET traffic's numbers kept from a `summarize_level` result."""
    return {key: level.get(key) for key in GET_KEYS}


def _ms(value: Mapping[str, Any] | None, key: str) -> str:
    return "-" if not value else f"{value[key]:.1f}"


def markdown_table(report: Mapping[str, Any]) -> str:
    """The README's event-ingestion table, from `events.json`."""
    setup = report["setup"]
    load = report.get("load_average") or {}
    header = (
        f"Run {report.get('created', '?')} on {machine_summary(report.get('machine') or {})}, "
        f"commit `{str(report.get('commit') or '?')[:12]}`, load average (1/5/15 min) "
        f"{load.get('start', '?')} at the start, {load.get('end', '?')} at the end "
        f"(`uptime`: {report.get('uptime', '?')}); {setup['mode']}; each level "
        f"{setup['warmup_s']:g} s warm-up + {setup['duration_s']:g} s recorded, events for "
        f"{setup['users']} synthetic users (ids from {setup['user_id_min']}) while "
        f"{setup['get_concurrency']} client(s) GET `/recommendations/{{known user}}?k="
        f"{setup['k']}`; durability `{setup['durability']}`."
    )
    idle = report["idle_get"]
    lines = [
        header,
        "",
        "| events/request | clients | events/s | requests/s | POST p50 ms | POST p99 ms "
        "| non-202 | GET p50 ms | GET p99 ms | GET non-200 | applied after the stream (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| (no events) | - | - | - | - | - | - | {_ms(idle.get('latency_ms'), 'p50_ms')} "
        f"| {_ms(idle.get('latency_ms'), 'p99_ms')} | {idle.get('errors', '-')} | - |",
    ]
    for lv in report["levels"]:
        post, get = lv["post"], lv["get"]
        drained = lv.get("drain_s")
        lines.append(
            f"| {post['batch']} | {post['concurrency']} | {post['events_per_s']:.0f} "
            f"| {post['requests_per_s']:.1f} | {_ms(post['latency_ms'], 'p50_ms')} "
            f"| {_ms(post['latency_ms'], 'p99_ms')} | {post['errors']} "
            f"| {_ms(get.get('latency_ms'), 'p50_ms')} | {_ms(get.get('latency_ms'), 'p99_ms')} "
            f"| {get.get('errors', '-')} | {'-' if drained is None else f'{drained:.1f}'} |"
        )
    cleanup = report.get("cleanup") or {}
    lines += [
        "",
        f"Cleanup: `DELETE /users/{{id}}/events` for the {cleanup.get('users', '?')} synthetic "
        f"users removed {cleanup.get('events', '?')} log entries "
        f"({cleanup.get('failed', '?')} deletions failed).",
    ]
    return "\n".join(lines)


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Events/s and POST p50/p99 per level (left), GET p50/p99 with and without events
    streaming (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 5.0))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for color, batch in zip(colors, _batches(report["levels"]), strict=False):
        levels = [lv for lv in report["levels"] if lv["post"]["batch"] == batch]
        levels = [lv for lv in levels if lv["post"]["latency_ms"]]
        rates = [lv["post"]["events_per_s"] for lv in levels]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            values = [lv["post"]["latency_ms"][key] for lv in levels]
            ax.plot(rates, values, style, color=color, label=f"{batch}/request {key[:3]}")
        for x, lv in zip(rates, levels, strict=True):
            ax.annotate(
                f"c={lv['post']['concurrency']}",
                (x, lv["post"]["latency_ms"]["p50_ms"]),
                textcoords="offset points",
                xytext=(4, -10),
                fontsize=7,
                color=color,
            )
        gets = [lv for lv in levels if lv["get"].get("latency_ms")]
        for key, style in (("p50_ms", "-o"), ("p99_ms", "--s")):
            bx.plot(
                [lv["post"]["events_per_s"] for lv in gets],
                [lv["get"]["latency_ms"][key] for lv in gets],
                style,
                color=color,
                label=f"while {batch}/request {key[:3]}",
            )
    idle = (report.get("idle_get") or {}).get("latency_ms")
    if idle:
        for key, style in (("p50_ms", "-"), ("p99_ms", "--")):
            bx.axhline(idle[key], color="grey", linestyle=style, label=f"no events {key[:3]}")
    ax.set_xlabel("acknowledged events/s")
    ax.set_ylabel("POST /events latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title("Event ingestion (closed loop, 202 after WAITAOF)")
    bx.set_xlabel("acknowledged events/s")
    bx.set_ylabel("GET /recommendations latency (ms, log scale)")
    bx.set_yscale("log")
    bx.set_title("Recommendations while events stream in")
    for axis in (ax, bx):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _batches(levels: Iterable[Mapping[str, Any]]) -> list[int]:
    seen: list[int] = []
    for lv in levels:
        if lv["post"]["batch"] not in seen:
            seen.append(lv["post"]["batch"])
    return seen
