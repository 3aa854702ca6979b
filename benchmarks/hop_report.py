"""The README table of `benchmarks.hop`: handle calls, payload serialization, HTTP and the
Controller's call graph, from its JSON (pure: no services)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.common import machine_summary
from benchmarks.stack import render_readme

README_BEGIN = "<!-- hop-table:begin (python -m benchmarks.hop --render-only) -->"
README_END = "<!-- hop-table:end -->"
METHOD_LABELS = {
    "noop": "`noop`: an int in, None out",
    "retrieval": "`retrieval`: an int in, 200 + 100 movies out",
    "rank": "`rank`: 350 candidates (13 columns) in, 350 scores out",
}


def markdown_table(report: Mapping[str, Any]) -> str:
    """The README block: setup line, handle calls, serialization, HTTP, the composition floor."""
    load = report["load_average"]
    gap = report["setup"].get("gap_ms", 0.0)
    spacing = f" (handle calls {gap:g} ms apart)" if gap else " (handle calls back to back)"
    lines = [
        f"Run {report['created']} on {machine_summary(report['machine'])}, commit "
        f"`{(report.get('commit') or '?')[:7]}`; 1-min load average {load['start'][0]} at the "
        f"start, {load['end'][0]} at the end. One call or request at a time{spacing}, "
        f"{report['setup']['calls']} calls per method and {report['setup']['requests']} "
        f"requests per system after {report['setup']['warmup']} untimed; handles over "
        f"{report['setup']['handle_transport']}; CPU of the named processes, idle subtracted.",
        "",
        "| one DeploymentHandle call | caller CPU ms | callee CPU ms | CPU ms | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for method, row in report["handle_calls"].items():
        lines.append(
            f"| {METHOD_LABELS.get(method, method)} | {row['caller_cpu_ms']:.2f} | "
            f"{row['callee_cpu_ms']:.2f} | {row['cpu_ms']:.2f} | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} |"
        )
    lines += [
        "",
        "| payload, cloudpickle (in process) | bytes | dumps µs | loads µs |",
        "|---|---|---|---|",
    ]
    for method, row in report["serialization"].items():
        lines.append(
            f"| {METHOD_LABELS.get(method, method)} | {row['bytes']} | {row['dumps_us']:.0f} | "
            f"{row['loads_us']:.0f} |"
        )
    lines += [
        "",
        "| one `GET /noop` (keep-alive) | server CPU ms | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for system, label in (("serve", "HAProxy + Serve ingress replica"), ("uvicorn", "uvicorn")):
        row = report["http"][system]
        parts = ", ".join(f"{k} {v:.2f}" for k, v in row["cpu_ms_by_process"].items())
        lines.append(
            f"| {label} | {row['cpu_ms']:.2f} ({parts}) | {row['p50_ms']:.2f} | "
            f"{row['p99_ms']:.2f} |"
        )
    floor = report["composition"]
    flow = report["flow"]
    lines += [
        "",
        "| composition per answer: 4 stage calls + HTTP in Serve instead of uvicorn | CPU ms "
        "| p50 ms |",
        "|---|---|---|",
        f"| the four calls one after another (sum of the rows above; p50: one list call + the "
        f"rank call) | {floor['cpu_ms']:.2f} | {floor['p50_ms']:.2f} |",
        f"| measured as the app runs them: three at once, then ranking (caller "
        f"{flow['caller_cpu_ms']:.2f} + callees {flow['callees_cpu_ms']:.2f} ms CPU, HTTP added) "
        f"| **{floor['flow_cpu_ms']:.2f}** | **{floor['flow_p50_ms']:.2f}** |",
    ]
    return "\n".join(lines)


def render(json_path: Path, readme: Path) -> int:
    """Regenerates the README's hop table from `json_path`; returns the exit status."""
    return render_readme(json_path, readme, README_BEGIN, README_END, markdown_table, "hop table")
