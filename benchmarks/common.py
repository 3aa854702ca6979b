"""Helpers shared by the benchmarks: latency percentiles, call timing, machine info, JSON output.

Kept free of project imports (and of TensorFlow, Ray, Redis) so any benchmark, and any
subprocess a benchmark starts, can use it cheaply.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_PACKAGES: tuple[str, ...] = (
    "numpy",
    "tensorflow",
    "tensorflow-recommenders",
    "ray",
    "redis",
    "feast",
)
"""Packages whose versions `machine_info` records unless told otherwise."""


def percentiles(
    values_ms: Sequence[float], quantiles: Iterable[float] = (50, 95, 99)
) -> dict[str, float | int]:
    """Summary of latency samples.

    Percentiles interpolate linearly between the closest ranks (numpy's default method).

    Args:
        values_ms: Latency samples in milliseconds (at least one).
        quantiles: Percentiles to report, each in [0, 100].

    Returns:
        {"n", "mean_ms", "min_ms", "max_ms", "p50_ms", "p95_ms", ...}: one "p<q>_ms" key per
        quantile (e.g. 99.9 -> "p99.9_ms").

    Raises:
        ValueError: No samples, a non-finite sample, or a quantile outside [0, 100].
    """
    values = sorted(float(v) for v in values_ms)
    if not values:
        raise ValueError("percentiles of an empty sample")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("latency samples must be finite")
    out: dict[str, float | int] = {
        "n": len(values),
        "mean_ms": math.fsum(values) / len(values),
        "min_ms": values[0],
        "max_ms": values[-1],
    }
    for q in quantiles:
        if not 0 <= q <= 100:
            raise ValueError(f"quantile must be in [0, 100], got {q}")
        rank = (len(values) - 1) * q / 100
        low, high = math.floor(rank), math.ceil(rank)
        value = values[low] + (values[high] - values[low]) * (rank - low)
        out[f"p{q:g}_ms"] = value
    return out


def time_calls(call: Callable[[], Any], n: int, warmup: int = 0) -> list[float]:
    """Wall-clock latency of `n` consecutive calls, after `warmup` untimed ones.

    Args:
        call: What to time (no arguments).
        n: Timed calls (>= 1).
        warmup: Untimed calls first.

    Returns:
        n latencies in milliseconds, in call order.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def time_each(call: Callable[[T], Any], inputs: Sequence[T], warmup: int = 0) -> list[float]:
    """Wall-clock latency of `call(x)` for each input, in order, after `warmup` untimed calls.

    The warm-up calls cycle over `inputs` too, so they exercise the same code paths.

    Args:
        call: What to time, given one input.
        inputs: One timed call per input (at least one).
        warmup: Untimed calls first.

    Returns:
        len(inputs) latencies in milliseconds.
    """
    if not inputs:
        raise ValueError("no inputs to time")
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    samples = []
    for x in inputs:
        start = time.perf_counter()
        call(x)
        samples.append((time.perf_counter() - start) * 1000.0)
    return samples


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine skews timings)."""
    return [round(x, 2) for x in os.getloadavg()]


def rss_bytes() -> int:
    """Resident set size of this process in bytes (VmRSS of /proc/self/status)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS line in /proc/self/status")


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, or platform.processor() where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_bytes() -> int | None:
    """Physical memory (MemTotal of /proc/meminfo), None where unavailable."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def package_version(name: str) -> str | None:
    """Installed version of a distribution, None when it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """What a benchmark ran on: CPUs, memory, OS, Python and package versions.

    Args:
        packages: Distribution names to report (None for those not installed).

    Returns:
        {"cpu_count", "cpu_model", "memory_bytes", "platform", "python", "versions"}.
    """
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_bytes": memory_total_bytes(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: package_version(name) for name in packages},
    }


def utc_now() -> str:
    """Current UTC time, ISO 8601 to the second (e.g. "2025-01-01T12:00:00+00:00")."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def write_json(path: Path | str, payload: Mapping[str, Any]) -> Path:
    """Writes `payload` as indented JSON, atomically (temp file + rename).

    numpy scalars and arrays become plain numbers and lists, paths become strings; NaN and
    infinity are refused (they are not JSON).

    Returns:
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(payload, indent=2, default=_json_default, allow_nan=False)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, target)
    return target


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def update_readme_block(readme: Path | str, begin: str, end: str, body: str) -> bool:
    """Replaces the text between the `begin` and `end` marker lines of a README with `body`.

    Generated tables live between such markers so they can be regenerated from the JSON
    (and checked against it) without touching the prose around them.

    Returns:
        Whether the file changed.

    Raises:
        ValueError: A marker is missing, or `end` does not follow `begin`.
    """
    path = Path(readme)
    text = path.read_text()
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise ValueError(f"{path} has no {begin!r} ... {end!r} block")
    new = f"{text[: start + len(begin)]}\n{body.rstrip()}\n{text[stop:]}"
    if new == text:
        return False
    path.write_text(new)
    return True


def readme_block(readme: Path | str, begin: str, end: str) -> str:
    """The text between the `begin` and `end` marker lines (without the markers' newlines).

    Raises:
        ValueError: A marker is missing.
    """
    text = Path(readme).read_text()
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise ValueError(f"{readme} has no {begin!r} ... {end!r} block")
    return text[start + len(begin) : stop].strip("\n")


def machine_summary(machine: Mapping[str, Any]) -> str:
    """One line for a README from `machine_info()`: CPUs, model, memory, Python, Ray."""
    memory = machine.get("memory_bytes")
    gib = f", {memory / 2**30:.0f} GiB" if memory else ""
    ray = (machine.get("versions") or {}).get("ray")
    return (
        f"{machine.get('cpu_count')} CPUs ({machine.get('cpu_model')}){gib}, "
        f"Python {machine.get('python')}" + (f", Ray {ray}" if ray else "")
    )


def git_commit(path: Path | str | None = None) -> str | None:
    """The checked-out commit of the repository at `path` (default: this file's), with
    "-dirty" when tracked files are modified; None outside a git checkout."""
    import subprocess

    where = str(path or Path(__file__).resolve().parent)
    try:
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}-dirty" if dirty else head
