"""Schemathesis (`st run --checks all`) against the API, and the API served in-process.

`run_schemathesis` runs the CLI the way a user would (`st run URL/openapi.json --checks all`),
with `tests/deployments/schemathesis.toml` and the hooks of `schemathesis_hooks.py` (the domain
rules a schema cannot state, each with its reason; also in the README's "API contract").
`serve_in_process` puts an ASGI app (e.g. `create_app` over the running stages' handles, with
auth on) behind a real uvicorn on a free loopback port, in a thread of the test process.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = "tests.deployments.schemathesis_hooks"
SEED = 7


@dataclass(frozen=True)
class ContractRun:
    """One `st run`: its exit code, output and the counts it reports (cases, operations)."""

    returncode: int
    output: str

    @property
    def cases(self) -> int:
        """Generated test cases (Schemathesis's summary line), 0 when not found."""
        found = re.search(r"(\d+) generated", self.output)
        return int(found.group(1)) if found else 0

    @property
    def operations(self) -> tuple[int, int, int]:
        """(selected, total, tested) API operations (Schemathesis's summary), 0s when not found."""
        selected = re.search(r"Selected: (\d+)/(\d+)", self.output)
        tested = re.search(r"Tested: (\d+)", self.output)
        if selected is None or tested is None:
            return 0, 0, 0
        return int(selected.group(1)), int(selected.group(2)), int(tested.group(1))

    @property
    def phases(self) -> set[str]:
        """The test phases Schemathesis's summary marks passed (e.g. Coverage, Stateful)."""
        if "Test Phases:" not in self.output:
            return set()
        section = self.output.split("Test Phases:", 1)[1].split("Test cases:", 1)[0]
        return set(re.findall(r"\u2705\s*(\w+)", section))

    @property
    def summary(self) -> str:
        """The last lines of the output (the summary), for the test log."""
        return "\n".join(self.output.strip().splitlines()[-25:])


def run_schemathesis(
    base_url: str,
    *,
    max_examples: int,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 900.0,
) -> ContractRun:
    """`st run <base_url>/openapi.json --checks all` with the project's config.

    Args:
        base_url: The API's root, e.g. http://127.0.0.1:8000.
        max_examples: Test cases per operation and phase (bounds the run's length).
        headers: Sent with every request (`-H NAME: VALUE`), e.g. the API key.
        timeout_s: The whole run's limit.
    """
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    path = os.environ.get("PYTHONPATH")
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, check=False, cwd=ROOT, env=env
    )
    output = done.stdout + done.stderr
    print(f"\n[st run {base_url}] {time.perf_counter() - started:.0f} s, exit {done.returncode}")
    return ContractRun(done.returncode, output)


@contextlib.contextmanager
def serve_in_process(app: Any, startup_timeout_s: float = 30.0) -> Iterator[str]:
    """Serves `app` with uvicorn on a free 127.0.0.1 port in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="contract-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
