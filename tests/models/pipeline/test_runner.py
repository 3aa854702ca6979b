from pathlib import Path

import pytest

from models.pipeline.runner import PipelineError, Step, StepContext, StepOutput, run_steps
from movierec.manifest import Manifest


def _writer(name: str, text: str, calls: list[str]) -> Step:
    def run(ctx: StepContext) -> StepOutput:
        calls.append(name)
        (ctx.out_dir / f"{name}.txt").write_text(text)
        return StepOutput([f"{name}.txt"], {"chars": len(text)})

    return Step(name=name, run=run, config={"text": text})


def _manifest() -> Manifest:
    return Manifest(variant="tiny", mode="eval", data_hash="d1")


def test_first_run_builds_everything_and_writes_the_manifest(tmp_path: Path) -> None:
    calls: list[str] = []
    live = tmp_path / "eval"
    run_steps([_writer("a", "x", calls), _writer("b", "yy", calls)], live, _manifest())
    assert calls == ["a", "b"]
    assert (live / "a.txt").read_text() == "x"
    saved = Manifest.load(live)
    assert saved is not None
    assert saved.steps["b"].metrics == {"chars": 2}
    assert live.is_symlink()


def test_unchanged_steps_are_skipped_and_changed_ones_rebuilt(tmp_path: Path) -> None:
    live = tmp_path / "eval"
    run_steps([_writer("a", "x", []), _writer("b", "y", [])], live, _manifest())
    calls: list[str] = []
    statuses: list[tuple[str, str]] = []
    run_steps(
        [_writer("a", "x", calls), _writer("b", "changed", calls)],
        live,
        _manifest(),
        on_step=lambda n, s: statuses.append((n, s)),
    )
    assert calls == ["b"]
    assert statuses == [("a", "skipped"), ("b", "built")]
    assert (live / "a.txt").read_text() == "x"
    assert (live / "b.txt").read_text() == "changed"


def test_new_data_hash_rebuilds_everything(tmp_path: Path) -> None:
    live = tmp_path / "eval"
    run_steps([_writer("a", "x", [])], live, _manifest())
    calls: list[str] = []
    run_steps([_writer("a", "x", calls)], live, Manifest("tiny", "eval", data_hash="d2"))
    assert calls == ["a"]


def test_upstream_change_invalidates_dependents(tmp_path: Path) -> None:
    live = tmp_path / "eval"

    def steps(text: str, calls: list[str]) -> list[Step]:
        a = _writer("a", text, calls)
        b = _writer("b", "same", calls)
        return [a, Step(name="b", run=b.run, config=b.config, depends_on=("a",))]

    run_steps(steps("x", []), live, _manifest())
    calls: list[str] = []
    run_steps(steps("new", calls), live, _manifest())
    assert calls == ["a", "b"]


def test_failed_step_leaves_previous_artifacts_intact(tmp_path: Path) -> None:
    live = tmp_path / "eval"
    run_steps([_writer("a", "good", [])], live, _manifest())

    def broken(ctx: StepContext) -> StepOutput:
        (ctx.out_dir / "a.txt").write_text("half-written")
        raise ValueError("ratings.parquet is corrupt")

    with pytest.raises(PipelineError, match=r"step 'a' failed: ratings.parquet is corrupt"):
        run_steps([Step(name="a", run=broken, config={"v": 2})], live, _manifest())
    assert (live / "a.txt").read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir() if "build" in p.name) == [live.resolve().name]


def test_step_that_omits_a_declared_output_fails(tmp_path: Path) -> None:
    def lying(ctx: StepContext) -> StepOutput:
        return StepOutput(["missing.txt"])

    with pytest.raises(PipelineError, match=r"did not write missing\.txt"):
        run_steps([Step(name="a", run=lying)], tmp_path / "eval", _manifest())


def test_force_rebuilds_unchanged_steps(tmp_path: Path) -> None:
    live = tmp_path / "eval"
    run_steps([_writer("a", "x", [])], live, _manifest())
    calls: list[str] = []
    run_steps([_writer("a", "x", calls)], live, _manifest(), force=True)
    assert calls == ["a"]


def test_nothing_changed_keeps_the_live_tree_and_its_build_id(tmp_path: Path) -> None:
    live = tmp_path / "eval"
    run_steps([_writer("a", "x", [])], live, _manifest())
    first = live.resolve()
    kept = run_steps([_writer("a", "x", [])], live, _manifest())
    assert live.resolve() == first
    assert kept.steps["a"].metrics == {"chars": 1}
    assert sorted(p.name for p in tmp_path.iterdir() if "build" in p.name) == [first.name]


def test_a_changed_manifest_field_makes_a_new_tree_even_with_every_step_reused(
    tmp_path: Path,
) -> None:
    live = tmp_path / "eval"
    run_steps([_writer("a", "x", [])], live, _manifest())
    first = live.resolve()
    calls: list[str] = []
    newer = Manifest("tiny", "eval", data_hash="d1", versions={"tensorflow": "2.21.0"})
    run_steps([_writer("a", "x", calls)], live, newer)
    assert calls == []
    assert live.resolve() != first
    saved = Manifest.load(live)
    assert saved is not None and saved.versions == {"tensorflow": "2.21.0"}


def test_a_step_reading_some_tables_ignores_changes_to_the_others(tmp_path: Path) -> None:
    live = tmp_path / "eval"

    def steps(calls: list[str]) -> list[Step]:
        a, b = _writer("a", "x", calls), _writer("b", "y", calls)
        return [Step(name="a", run=a.run, config=a.config, data=("movies",)), b]

    def manifest(movies: str, ratings: str) -> Manifest:
        hashes = {"movies": movies, "ratings": ratings}
        return Manifest("tiny", "eval", data_hash=movies + ratings, table_hashes=hashes)

    run_steps(steps([]), live, manifest("m1", "r1"))
    calls: list[str] = []
    run_steps(steps(calls), live, manifest("m1", "r2"))
    assert calls == ["b"]
    calls.clear()
    run_steps(steps(calls), live, manifest("m2", "r2"))
    assert calls == ["a", "b"]


def test_a_step_reading_a_table_the_manifest_lacks_fails(tmp_path: Path) -> None:
    a = _writer("a", "x", [])
    step = Step(name="a", run=a.run, data=("tags",))
    with pytest.raises(PipelineError, match=r"step 'a' reads \['tags'\]"):
        run_steps([step], tmp_path / "eval", _manifest())
