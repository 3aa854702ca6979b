"""The `make artifacts` chain: every artifact serving needs, built from data in one command.

Steps run in order; a step whose inputs, configuration and code are unchanged is skipped
(see `runner.py`). In `eval` mode every model and feature is built from the training split
of the stratified 75/25 seed-42 split (or a benchmark's own split, `PresetSplit`), so
nothing leaks from the test split; `full` mode builds production artifacts from all ratings,
with the logged feedback events folded in (`events.py`; eval builds never read the event
log).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from models.data import MovieLens, load_dataset, stratified_split
from models.pipeline.catalog import dataset_fingerprint, popularity
from models.pipeline.events import FoldConfig, fold_event_log
from models.pipeline.runner import PipelineError, Step, StepContext, StepOutput, run_steps
from movierec.layout import ArtifactLayout, Mode
from movierec.manifest import Manifest, package_versions

SPLIT_RATIO = 0.75
SPLIT_SEED = 42


@dataclass
class BuildOptions:
    """What to build.

    Attributes:
        variant: MovieLens variant.
        mode: "eval" (training split only) or "full" (all ratings).
        artifacts_dir: Root of all artifacts trees.
        force: Rebuild every step.
        retrieval: Overrides of `RetrievalConfig` fields (e.g. {"epochs": 1} for tests).
        ranking: Overrides of `RankerConfig` fields (e.g. {"epochs": 1} for tests).
        itemcf: Overrides of `ItemCFConfig` fields.
        events_dir: The event log's part files, folded into the ratings of a full build
            (None: no events). Eval builds ignore it.
        fold: Overrides of `FoldConfig` fields (the ratings of implicit events).
    """

    variant: str
    mode: Mode
    artifacts_dir: Path
    force: bool = False
    retrieval: dict[str, object] = field(default_factory=dict)
    ranking: dict[str, object] = field(default_factory=dict)
    itemcf: dict[str, object] = field(default_factory=dict)
    events_dir: Path | None = None
    fold: dict[str, float] = field(default_factory=dict)
    split: PresetSplit | None = None


@dataclass(frozen=True)
class PresetSplit:
    """An eval build's own train/test split instead of the stratified one (a benchmark's
    custom protocol, e.g. `benchmarks.replay`). The splits step writes the two tables as
    given; its fingerprint is the name and a content hash of both, so a changed split
    rebuilds the tree and the same split again skips every step.

    Attributes:
        name: What the split is (recorded in the splits step's configuration).
        train: The ratings the build learns from.
        test: The held-out ratings.
    """

    name: str
    train: pd.DataFrame
    test: pd.DataFrame

    def config(self) -> dict[str, str]:
        """The splits step's configuration: the name and the tables' content hash."""
        tables: dict[str, pd.DataFrame | None] = {"train": self.train, "test": self.test}
        return {"preset": self.name, "tables": dataset_fingerprint(tables)}


def with_events(options: BuildOptions, dataset: MovieLens) -> tuple[MovieLens, dict[str, Any]]:
    """The dataset a build learns from: a full build's ratings with the event log folded in
    (and what was folded, for the manifest); an eval build's dataset as it is."""
    if options.mode != "full" or options.events_dir is None:
        return dataset, {}
    try:
        folded = fold_event_log(
            dataset.ratings,
            options.events_dir,
            FoldConfig(**options.fold),
            movie_ids=dataset.movies["movie_id"],
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:  # pyarrow's errors are among them
        raise PipelineError(f"reading the event log {options.events_dir}: {exc}") from exc
    return replace(dataset, ratings=folded.ratings), folded.record


def _splits_step(layout: ArtifactLayout, preset: PresetSplit | None = None) -> Step:
    if preset is not None and layout.mode != "eval":
        raise PipelineError("a preset split is for eval builds only")

    def publish(ctx: StepContext, train: pd.DataFrame, test: pd.DataFrame) -> None:
        ctx.state["train"], ctx.state["test"] = train, test

    def run(ctx: StepContext) -> StepOutput:
        ratings = ctx.state["dataset"].ratings
        if preset is not None:
            train, test = preset.train, preset.test
        elif layout.mode == "eval":
            train, test = stratified_split(ratings, ratio=SPLIT_RATIO, seed=SPLIT_SEED)
        else:
            train, test = ratings, ratings.iloc[0:0]
        out = ctx.out_dir / "splits"
        out.mkdir(parents=True, exist_ok=True)
        train.to_parquet(out / "train.parquet", index=False)
        test.to_parquet(out / "test.parquet", index=False)
        publish(ctx, train, test)
        return StepOutput(["splits"], {"train_rows": len(train), "test_rows": len(test)})

    def restore(ctx: StepContext) -> None:
        splits = ctx.out_dir / "splits"
        publish(
            ctx,
            pd.read_parquet(splits / "train.parquet"),
            pd.read_parquet(splits / "test.parquet"),
        )

    config: dict[str, object] = {"ratio": SPLIT_RATIO, "seed": SPLIT_SEED, "mode": layout.mode}
    if preset is not None:
        config = {**preset.config(), "mode": layout.mode}
    return Step("splits", run, config, code=("models/data/splits.py",), restore=restore)


def _catalog_step() -> Step:
    def run(ctx: StepContext) -> StepOutput:
        out = ctx.out_dir / "catalog"
        out.mkdir(parents=True, exist_ok=True)
        dataset: MovieLens = ctx.state["dataset"]
        dataset.movies.to_parquet(out / "movies.parquet", index=False)
        popular = popularity(ctx.state["train"])
        popular.to_parquet(out / "popularity.parquet", index=False)
        return StepOutput(["catalog"], {"movies": len(dataset.movies), "rated": len(popular)})

    return Step("catalog", run, code=("models/pipeline/catalog.py",), depends_on=("splits",))


def _retrieval_step(overrides: dict[str, object]) -> Step:
    from models.retrieval.config import RetrievalConfig

    config = RetrievalConfig.from_dict({**RetrievalConfig().to_dict(), **overrides})

    def run(ctx: StepContext) -> StepOutput:
        from models.retrieval.export import export_retrieval
        from models.retrieval.train import train_retrieval

        dataset: MovieLens = ctx.state["dataset"]
        result = train_retrieval(ctx.state["train"], dataset.movies, dataset.users, config)
        export_retrieval(result, ctx.out_dir / "retrieval")
        losses = result.history.get("loss", [])
        return StepOutput(
            ["retrieval"],
            {
                "train_seconds": round(result.seconds, 1),
                "final_loss": losses[-1] if losses else None,
            },
        )

    return Step(
        "retrieval",
        run,
        config.to_dict(),
        code=("models/retrieval",),
        depends_on=("splits",),
    )


def _itemcf_step(overrides: dict[str, object]) -> Step:
    from models.itemcf.similarity import ItemCFConfig

    config = ItemCFConfig(**{**ItemCFConfig().to_dict(), **overrides})

    def run(ctx: StepContext) -> StepOutput:
        from models.itemcf.runtime import ItemCFRuntime

        dataset: MovieLens = ctx.state["dataset"]
        started = time.perf_counter()
        runtime = ItemCFRuntime.fit(ctx.state["train"], dataset.movies["movie_id"].tolist(), config)
        runtime.save(ctx.out_dir / "itemcf")
        return StepOutput(
            ["itemcf"],
            {"seconds": round(time.perf_counter() - started, 1), **runtime.describe()},
        )

    # Built from the training split only, like the two-tower model.
    return Step("itemcf", run, config.to_dict(), code=("models/itemcf",), depends_on=("splits",))


CONTENT_THREADS = 2


def _content_step() -> Step:
    def run(ctx: StepContext) -> StepOutput:
        from models.content.embeddings import embed_movies, load_encoder, write_embeddings

        dataset: MovieLens = ctx.state["dataset"]
        encoder = load_encoder(num_threads=CONTENT_THREADS)
        frame = embed_movies(dataset.movies, dataset.tags, encoder, num_threads=CONTENT_THREADS)
        out = ctx.out_dir / "content"
        out.mkdir(parents=True, exist_ok=True)
        write_embeddings(frame, out)
        return StepOutput(
            ["content"],
            {"movies": len(frame), "encode_seconds": round(frame.attrs["encode_seconds"], 1)},
        )

    # Content embeddings see the catalog only (never ratings): no split, and new ratings or
    # events do not re-embed the catalog.
    return Step(
        "content",
        run,
        {"model": "all-MiniLM-L6-v2"},
        code=("models/content",),
        data=("movies", "tags"),
    )


def _features_step() -> Step:
    def run(ctx: StepContext) -> StepOutput:
        from models.features import build_feature_tables, write_sources

        dataset: MovieLens = ctx.state["dataset"]
        tables = build_feature_tables(ctx.state["train"], dataset.movies, dataset.users)
        write_sources(tables, ctx.out_dir / "features")
        start, end = tables.time_range()
        rows = {name: table.num_rows for name, table in tables.tables().items()}
        return StepOutput(
            ["features"],
            {
                "snapshots": len(tables.snapshot_times),
                "materialize_start": start.isoformat(),
                "materialize_end": end.isoformat(),
                "rows": rows,
            },
        )

    # Feature snapshots see the training split only (all ratings in full mode).
    return Step(
        "features",
        run,
        code=("models/features", "feature_repo/movierec_repo.py"),
        depends_on=("splits",),
    )


def _ranking_step(overrides: dict[str, object]) -> Step:
    from models.ranking.config import RankerConfig

    config = replace(RankerConfig(), **overrides)  # type: ignore[arg-type]

    def run(ctx: StepContext) -> StepOutput:
        from models.ranking.build import build_ranker

        out = ctx.out_dir
        metrics = build_ranker(
            out / "ranking",
            ctx.state["train"],
            ctx.state["dataset"],
            out / "retrieval",
            out / "content",
            out / "features",
            config,
            itemcf_dir=out / "itemcf",
        )
        return StepOutput(["ranking"], metrics)

    return Step(
        "ranking",
        run,
        asdict(config),
        code=("models/ranking", "movierec/candidates.py", "movierec/ranking_inputs.py"),
        depends_on=("splits", "retrieval", "itemcf", "content", "features"),
    )


def steps_for(layout: ArtifactLayout, options: BuildOptions) -> list[Step]:
    """The ordered steps of one build."""
    return [
        _splits_step(layout, options.split),
        _catalog_step(),
        _retrieval_step(options.retrieval),
        _itemcf_step(options.itemcf),
        _content_step(),
        _features_step(),
        _ranking_step(options.ranking),
    ]


@dataclass(frozen=True)
class Prepared:
    """A build about to run: the data it learns from, its tree and its new manifest."""

    dataset: MovieLens
    layout: ArtifactLayout
    manifest: Manifest

    def state(self) -> dict[str, Any]:
        """The steps' initial shared state."""
        return {"dataset": self.dataset, "layout": self.layout}


def prepare(options: BuildOptions, dataset: MovieLens | None = None) -> Prepared:
    """Loads the data (a full build: with the event log folded in) and fingerprints it."""
    dataset, events = with_events(options, dataset or load_dataset(options.variant))
    layout = ArtifactLayout.of(options.artifacts_dir, options.variant, options.mode)
    tables = {
        "ratings": dataset.ratings,
        "movies": dataset.movies,
        "users": dataset.users,
        "tags": dataset.tags,
    }
    manifest = Manifest(
        variant=options.variant,
        mode=options.mode,
        data_hash=dataset_fingerprint(tables),
        table_hashes={name: dataset_fingerprint({name: frame}) for name, frame in tables.items()},
        versions=package_versions(),
        events=events,
    )
    return Prepared(dataset, layout, manifest)


def build(
    options: BuildOptions,
    dataset: MovieLens | None = None,
    on_step: Callable[[str, str], None] | None = None,
) -> Manifest:
    """Builds (or refreshes) one artifacts tree.

    Args:
        options: What to build.
        dataset: An already loaded dataset; loaded from the data cache if None.
        on_step: Progress callback (step name, "built" | "skipped").

    Returns:
        The manifest of the new live tree.
    """
    prepared = prepare(options, dataset)
    prepared.layout.root.parent.mkdir(parents=True, exist_ok=True)
    return run_steps(
        steps_for(prepared.layout, options),
        prepared.layout.root,
        prepared.manifest,
        state=prepared.state(),
        force=options.force,
        on_step=on_step,
    )
