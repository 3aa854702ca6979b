"""Helpers for `make run` / `make serve`.

python -m deployments.cli ready [--variant ml-100k] [--mode eval]
    exit 0 if the artifacts tree exists (its manifest.json), 1 otherwise
python -m deployments.cli wait [--url http://127.0.0.1:8000] [--timeout 600]
    wait until `serve status` shows the app RUNNING and /healthz answers; exit 1 on
    DEPLOY_FAILED, on UNHEALTHY for longer than Serve takes to replace a replica
    (`deployments.readiness`), or on timeout
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from deployments.readiness import DeployWatch

APP_NAME = "movierec"


def serve_status() -> dict[str, Any] | None:
    """`serve status` as a dict (None when Serve or the dashboard does not answer)."""
    serve = shutil.which("serve") or str(Path(sys.executable).with_name("serve"))
    try:
        out = subprocess.run(
            [serve, "status"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        parsed = yaml.safe_load(out.stdout)
    except yaml.YAMLError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _healthz(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _wait(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    app: dict[str, Any] = {}
    watch = DeployWatch()
    time.sleep(2.0)  # let a just-submitted config leave the previous RUNNING state
    while time.monotonic() < deadline:
        status = serve_status() or {}
        app = (status.get("applications") or {}).get(APP_NAME) or {}
        state = app.get("status")
        verdict = watch.observe(state, time.monotonic())
        if verdict == "failed":
            print(f"{APP_NAME}: {state}\n{app.get('message', '')}", file=sys.stderr)
            return 1
        health = _healthz(args.url) if verdict == "running" else None
        if health is not None:
            deployments = app.get("deployments") or {}
            print(f"{APP_NAME}: RUNNING at {args.url}")
            for name, info in sorted(deployments.items()):
                print(f"  {name:<13} {info.get('status')}")
            for stage, info in health.get("stages", {}).items():
                error = info.get("detail", {}).get("error")
                suffix = f" ({error})" if error else ""
                print(f"  stage {stage:<14} {info.get('status')}{suffix}")
            return 0
        time.sleep(2.0)
    print(f"{APP_NAME} not ready after {args.timeout:g} s: {app or 'no status'}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m deployments.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    wait = commands.add_parser("wait", help="wait until the app is RUNNING and answers")
    wait.add_argument("--url", default="http://127.0.0.1:8000")
    wait.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    return _wait(args)


if __name__ == "__main__":
    sys.exit(main())
