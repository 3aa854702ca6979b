"""Renders scale.json: the README tables (markdown) and the plot (PNG).

The README's tables sit between `README_BEGIN` and `README_END` markers and are only ever
written from the JSON (`benchmarks.common.update_readme_block`), so they cannot drift from
the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.common import machine_summary

METHODS = ("bruteforce", "scann", "redis_hnsw")
LABELS = {
    "bruteforce": "TFRS BruteForce (exact)",
    "scann": "ScaNN",
    "redis_hnsw": "Redis HNSW",
}
README_BEGIN = "<!-- scale-table:begin (python -m benchmarks.scale --render-only) -->"
README_END = "<!-- scale-table:end -->"


def _ms(summary: Mapping[str, Any], key: str = "p50_ms") -> str:
    value = float(summary[key])
    return f"{value:.3f}" if value < 0.1 else f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


def _retrieval_row(size: int, dim: int, method: str, result: Mapping[str, Any]) -> str:
    cells = [_size(size), str(dim), LABELS[method]]
    if "skipped" in result:
        cells += ["skipped"] * 6
    else:
        cells += [
            f"{_ms(result['single_ms'])} / {_ms(result['single_ms'], 'p95_ms')}",
            _ms(result["batch_ms"]),
            f"{result['recall_at_k']:.3f}",
            f"{result['recall_at_10']:.3f}",
            f"{result['bytes_per_item']:,.0f}",
            f"{result['build_s']:.1f} / {result['build_cpu_s']:.1f}",
        ]
    return "| " + " | ".join(cells) + " |"


def render_markdown(payload: Mapping[str, Any]) -> str:
    """Markdown tables of a scale.json payload: retrieval per size/dim/method, Feast reads."""
    params = payload["parameters"]
    k, batch = params["k"], params["batch_size"]
    load = payload["load_average"]
    lines = [
        f"Run {payload['created']} on {machine_summary(payload['machine'])}; load average "
        f"{load['before'][0]} before and {load['after'][0]} after (other work was running); "
        f"{params['queries']} queries per series, k = {k}, queries on one thread. "
        "Latency in ms; recall against exact top-k; B/movie: bytes per movie of the index "
        "(BruteForce: its tensors; ScaNN: serialized index; Redis: `used_memory` growth); "
        "build: wall-clock and CPU seconds (Redis server's included).",
        "",
        f"| movies | dim | method | 1 query p50 / p95 | batch of {batch} p50 | recall@{k} "
        "| recall@10 | B/movie | build s / CPU-s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for entry in payload["results"]:
        for method in METHODS:
            if method in entry["methods"]:
                lines.append(
                    _retrieval_row(entry["size"], entry["dim"], method, entry["methods"][method])
                )

    counts = [str(c) for c in params["feast_candidates"]]
    lines += [
        "",
        "Feast online read of the candidates' features (`OnlineFeatures.get_movie_features`, "
        "sync / async p50 ms), materialization time and Redis bytes per movie:",
        "",
        "| movies | " + " | ".join(f"{c} candidates" for c in counts)
        + " | materialize (s) | B/movie |",
        "|---:|" + "---:|" * (len(counts) + 2),
    ]  # fmt: skip
    for entry in payload["feast"]:
        if "skipped" in entry:
            cells = [_size(entry["size"])] + ["skipped"] * (len(counts) + 2)
        else:
            reads = entry["reads"]
            cells = [_size(entry["size"])]
            cells += [f"{_ms(reads[c]['sync_ms'])} / {_ms(reads[c]['async_ms'])}" for c in counts]
            write = entry["write"]
            cells += [
                f"{write['materialize_s']:.0f}",
                f"{write['used_memory_delta_bytes_per_item']:,.0f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    skipped = payload.get("skipped", [])
    if skipped:
        lines += ["", "Skipped:"]
        for item in skipped:
            what = item["method"] + (f" at dim {item['dim']}" if item.get("dim") else "")
            lines.append(f"- {what}, {_size(item['size'])} movies: {item['reason']}")
    return "\n".join(lines) + "\n"


def plot(payload: Mapping[str, Any], path: Path) -> Path:
    """Latency and memory per movie vs catalog size (log-x), one line per method and dim."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 9))
    panels = [
        (axes[0, 0], "single_ms", "p50_ms", "one query, p50 latency (ms)"),
        (axes[0, 1], "batch_ms", "p50_ms", f"batch of {payload['parameters']['batch_size']}, "
                                           "p50 latency (ms)"),
        (axes[1, 0], "bytes_per_item", None, "memory per movie (bytes)"),
    ]  # fmt: skip
    colours = {"bruteforce": "tab:blue", "scann": "tab:green", "redis_hnsw": "tab:red"}
    styles = ["-", "--", ":", "-."]
    dims = sorted({entry["dim"] for entry in payload["results"]})
    for ax, key, sub, title in panels:
        for method in METHODS:
            for style, dim in zip(styles, dims, strict=False):
                points = [
                    (e["size"], e["methods"][method][key] if sub is None
                     else e["methods"][method][key][sub])
                    for e in payload["results"]
                    if e["dim"] == dim and "skipped" not in e["methods"].get(method, {"skipped": 1})
                ]  # fmt: skip
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, style, marker="o", color=colours[method],
                            label=f"{LABELS[method]}, {dim}-d")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="catalog size (movies)", title=title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[1, 1]
    counts = [str(c) for c in payload["parameters"]["feast_candidates"]]
    done = [e for e in payload["feast"] if "skipped" not in e]
    for style, count in zip(styles, counts, strict=False):
        if done:
            ax.plot([e["size"] for e in done], [e["reads"][count]["sync_ms"]["p50_ms"]
                    for e in done], style, marker="o", label=f"{count} candidates")  # fmt: skip
    ax.set(xscale="log", xlabel="catalog size (movies)",
           title="Feast online read of candidate features, p50 (ms)")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    load = payload["load_average"]
    fig.suptitle(
        f"movierec scale curve: {payload['machine']['cpu_count']} CPUs, load average "
        f"{load['before'][0]} -> {load['after'][0]}, k={payload['parameters']['k']}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
