"""Runs build steps in order, skipping those whose inputs did not change.

Every file a run writes goes to a new build directory next to the live one; only when all
steps succeed does the live path, a symlink, flip to it in one atomic rename. A failed run
therefore leaves the previous artifacts exactly as they were, and a reader never sees a
half-written tree.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from movierec.manifest import Manifest, StepRecord, hash_files, hash_values

log = logging.getLogger(__name__)
PROJECT_ROOT = Path(__file__).resolve().parents[2]


class PipelineError(RuntimeError):
    """A step failed; the message names the step and the cause."""


@dataclass
class StepContext:
    """What a step receives.

    Attributes:
        out_dir: The staging directory; write every output below it.
        previous_dir: The live artifacts directory of the last successful run (may be absent).
        state: Values earlier steps published for later ones (DataFrames, paths, models).
    """

    out_dir: Path
    previous_dir: Path
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepOutput:
    """What a step returns: its output paths (relative to `out_dir`) and its metrics."""

    outputs: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One build step.

    Attributes:
        name: Unique step name, also its manifest key.
        run: Builds the outputs into `ctx.out_dir`.
        config: JSON-serializable configuration; part of the fingerprint.
        code: Source paths (relative to the project root) whose change invalidates the step.
        depends_on: Earlier steps whose fingerprints feed this one's.
        restore: Re-publishes a skipped step's state for later steps (e.g. loads a table
            the step would have produced); None if later steps need nothing from it.
        data: The input tables the step reads (keys of `Manifest.table_hashes`); None: all
            of them (`Manifest.data_hash`).
    """

    name: str
    run: Callable[[StepContext], StepOutput]
    config: dict[str, Any] = field(default_factory=dict)
    code: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    restore: Callable[[StepContext], None] | None = None
    data: tuple[str, ...] | None = None


def fingerprint(step: Step, manifest: Manifest, upstream: dict[str, str]) -> str:
    """Hash of everything a step's outputs depend on."""
    code_hash = hash_files([PROJECT_ROOT / p for p in step.code]) if step.code else ""
    ups = {name: upstream[name] for name in step.depends_on}
    return hash_values(step.name, step.config, _data_hash(step, manifest), code_hash, ups)


def _data_hash(step: Step, manifest: Manifest) -> str:
    if step.data is None:
        return manifest.data_hash
    missing = [table for table in step.data if table not in manifest.table_hashes]
    if missing:
        raise PipelineError(f"step '{step.name}' reads {missing}, which the manifest lacks")
    return hash_values({table: manifest.table_hashes[table] for table in step.data})


def run_steps(
    steps: Sequence[Step],
    target_dir: Path,
    manifest: Manifest,
    state: dict[str, Any] | None = None,
    force: bool = False,
    on_step: Callable[[str, str], None] | None = None,
) -> Manifest:
    """Runs `steps` into a staging directory and swaps it in as `target_dir`.

    Args:
        steps: Steps in dependency order.
        target_dir: The live artifacts directory.
        manifest: The new manifest (variant, mode, data hash and versions filled in).
        state: Initial shared state (e.g. the loaded dataset).
        force: Rebuild every step even if unchanged.
        on_step: Called with (step name, "built" | "skipped") for progress reporting.

    Returns:
        The manifest written into the new artifacts directory; the previous one, with the
        live tree left as it is, if no step and nothing else in the manifest changed.

    Raises:
        PipelineError: A step failed; `target_dir` is untouched.
    """
    previous = None if force else Manifest.load(target_dir)
    build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + f"-{secrets.token_hex(3)}"
    staging = target_dir.with_name(f"{target_dir.name}.build-{build_id}")
    staging.mkdir(parents=True)
    ctx = StepContext(out_dir=staging, previous_dir=target_dir, state=dict(state or {}))
    prints: dict[str, str] = {}
    built = False
    try:
        for step in steps:
            prints[step.name] = fingerprint(step, manifest, prints)
            record = _reuse(step, prints[step.name], previous, target_dir, staging)
            if record is not None and step.restore is not None:
                step.restore(ctx)
            if record is None:
                record = _build(step, prints[step.name], ctx)
                status = "built"
                built = True
            else:
                status = "skipped"
            manifest.steps[step.name] = record
            if on_step:
                on_step(step.name, status)
        if previous is not None and not built and asdict(manifest) == asdict(previous):
            # Nothing changed: the live tree (and its build id) stays, so a publish or a
            # replica sees the same build, not a copy of it under a new id.
            shutil.rmtree(staging, ignore_errors=True)
            return previous
        manifest.save(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap(staging, target_dir)
    return manifest


def _reuse(
    step: Step, print_: str, previous: Manifest | None, live: Path, staging: Path
) -> StepRecord | None:
    """Hard-links an unchanged step's outputs into staging; None if it must be rebuilt."""
    if previous is None or step.name not in previous.steps:
        return None
    record = previous.steps[step.name]
    if record.fingerprint != print_ or not all((live / o).exists() for o in record.outputs):
        return None
    for output in record.outputs:
        _link_tree(live / output, staging / output)
    return record


def _build(step: Step, print_: str, ctx: StepContext) -> StepRecord:
    started = time.perf_counter()
    try:
        result = step.run(ctx)
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError(f"step '{step.name}' failed: {exc}") from exc
    missing = [o for o in result.outputs if not (ctx.out_dir / o).exists()]
    if missing:
        raise PipelineError(f"step '{step.name}' did not write {', '.join(missing)}")
    return StepRecord(
        fingerprint=print_,
        outputs=list(result.outputs),
        seconds=round(time.perf_counter() - started, 3),
        metrics=result.metrics,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _link_tree(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=os.link, dirs_exist_ok=True)
    else:
        os.link(src, dst)


def _swap(staging: Path, target: Path) -> None:
    """Points the `target` symlink at `staging` atomically, then removes the old build."""
    old = target.resolve() if target.is_symlink() else None
    if target.exists() and not target.is_symlink():  # a plain directory: move it aside
        old = target.with_name(f"{target.name}.build-legacy-{os.getpid()}")
        os.replace(target, old)
    link = target.with_name(f".{target.name}.link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(staging.name)
    os.replace(link, target)
    if old is not None and old != staging.resolve():
        shutil.rmtree(old, ignore_errors=True)
