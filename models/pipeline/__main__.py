"""`python -m models.pipeline`: build every artifact serving needs (`make artifacts`)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from models.data import DatasetError
from models.pipeline.build import BuildOptions, build, steps_for
from models.pipeline.load import load_all
from models.pipeline.publish import publish_build
from models.pipeline.runner import PipelineError
from movierec.events import offline_events_dir
from movierec.layout import MODES, ArtifactLayout, Mode
from movierec.redis_url import RedisServerError
from movierec.settings import get_settings
from movierec.storage import ObjectStore, StorageError


def main(argv: list[str] | None = None) -> int:
    """Parses arguments, runs the build, prints a summary; returns the exit code."""
    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m models.pipeline", description=__doc__)
    parser.add_argument("--variant", default=settings.dataset)
    parser.add_argument("--mode", choices=MODES, default="eval")
    parser.add_argument("--full", action="store_true", help="same as --mode full")
    parser.add_argument("--force", action="store_true", help="rebuild unchanged steps too")
    parser.add_argument("--artifacts-dir", type=str, default=str(settings.artifacts_dir))
    parser.add_argument(
        "--no-load", action="store_true", help="build files only; do not load them into Redis"
    )
    parser.add_argument(
        "--events-dir",
        type=Path,
        default=settings.events_dir,
        help="full mode: the event log's part files to fold in (default "
        "MOVIEREC_EVENTS_DIR, else <run_dir>/events/<variant>_full); eval mode ignores it",
    )
    parser.add_argument("--no-events", action="store_true", help="full mode: fold in no events")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    mode: Mode = "full" if args.full else args.mode
    layout = ArtifactLayout.of(Path(args.artifacts_dir), args.variant, mode)
    events_dir = None
    if mode == "full" and not args.no_events:
        events_dir = args.events_dir or offline_events_dir(settings.run_dir, layout.namespace)
    options = BuildOptions(
        variant=args.variant,
        mode=mode,
        artifacts_dir=Path(args.artifacts_dir),
        force=args.force,
        events_dir=events_dir,
    )
    total = len(steps_for(layout, options))
    started = time.perf_counter()
    with tqdm(total=total, desc=f"artifacts {layout.variant}/{layout.mode}", unit="step") as bar:

        def progress(name: str, status: str) -> None:
            bar.set_postfix_str(f"{name}: {status}")
            bar.update(1)

        try:
            manifest = build(options, on_step=progress)
        except (DatasetError, PipelineError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            print(f"error: previous artifacts at {layout.root} were left intact", file=sys.stderr)
            return 2
    for name, record in manifest.steps.items():
        print(f"  {name:<12} {record.seconds:8.1f} s  {record.metrics}")
    if manifest.events:
        folded = manifest.events
        print(
            f"  events: {folded['events']} from {folded['dir']} ({folded['by_type']}); "
            f"training rows {folded['rows_before']} -> {folded['rows_after']}"
        )
    try:
        if settings.storage_uri:
            store = ObjectStore(settings.storage_uri, settings.s3_endpoint_url)
            build_id, loaded = publish_build(layout, manifest, store, load=not args.no_load)
        else:
            loaded = {} if args.no_load else load_all(layout, manifest)
    except (RedisServerError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        if settings.storage_uri:
            print("error: CURRENT in the store was left on the previous build", file=sys.stderr)
        return 2
    for target, status in loaded.items():
        print(f"  redis: {target:<12} {status}")
    print(f"artifacts ready at {layout.root} in {time.perf_counter() - started:.1f} s")
    if settings.storage_uri:
        print(f"published build {build_id} to {store.tree_uri(layout.variant, layout.mode)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
