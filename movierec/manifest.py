"""The artifacts manifest: what was built, from which inputs, how long it took, how good it is.

`manifest.json` sits at the root of an artifacts directory. A step whose fingerprint (hash
of its inputs, configuration and code) matches the manifest, and whose outputs exist, is
skipped on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
_TRACKED_PACKAGES = (
    "tensorflow",
    "tensorflow-recommenders",
    "tf-keras",
    "feast",
    "ray",
    "redis",
    "sentence-transformers",
    "torch",
    "pandas",
)


@dataclass
class StepRecord:
    """One step's entry in the manifest.

    Attributes:
        fingerprint: Hash of the step's inputs, configuration and code.
        outputs: Paths the step wrote, relative to the artifacts directory.
        seconds: Wall-clock duration of the step, in seconds.
        metrics: Numbers the step reports (sizes, losses, quality).
        finished_at: UTC ISO-8601 time the step finished.
    """

    fingerprint: str
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    finished_at: str = ""


@dataclass
class Manifest:
    """The whole manifest of one artifacts directory."""

    variant: str
    mode: str
    data_hash: str = ""
    table_hashes: dict[str, str] = field(default_factory=dict)
    """Each input table's own hash, for steps that read only some tables (`Step.data`)."""
    versions: dict[str, str] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)
    events: dict[str, Any] = field(default_factory=dict)
    """What a full build folded in from the event log (directory, digest, counts); empty
    for eval builds and builds without an event log."""

    def to_json(self) -> str:
        """Serializes the manifest, keys sorted for stable diffs."""
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def load(cls, directory: Path) -> Manifest | None:
        """Reads `<directory>/manifest.json`; None if absent or unreadable."""
        path = directory / MANIFEST_NAME
        try:
            raw = json.loads(path.read_text())
            steps = {name: StepRecord(**rec) for name, rec in raw.pop("steps", {}).items()}
            return cls(steps=steps, **raw)
        except (OSError, ValueError, TypeError):
            return None

    def save(self, directory: Path) -> None:
        """Writes `<directory>/manifest.json` atomically."""
        tmp = directory / (MANIFEST_NAME + ".tmp")
        tmp.write_text(self.to_json())
        os.replace(tmp, directory / MANIFEST_NAME)


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages whose change can change an artifact."""
    versions = {"python": platform.python_version()}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def hash_files(paths: list[Path]) -> str:
    """SHA-256 over the names and bytes of files (directories are walked, sorted).

    Args:
        paths: Files or directories.

    Returns:
        Hex digest; changes when any byte or file name changes.
    """
    digest = hashlib.sha256()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def hash_values(*values: Any) -> str:
    """SHA-256 of JSON-serializable values (configuration, upstream fingerprints)."""
    payload = json.dumps(values, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()
