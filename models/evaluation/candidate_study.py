"""How many candidates are worth ranking? Validation nDCG@10 against the candidate settings.

    python -m models.evaluation.candidate_study [--variant ml-100k] \\
        [--retrain "max_ranked 150" "seed 43"] [--out-dir benchmarks/results]

The validation split of `models.evaluation.tuning` (the eval tree's training split, split
again per user 75/25 with `VALIDATION_SEED`); the test split is never read. The ranking
stage's cost grows with the number of candidates it scores (and the Controller's own work
with the merged list), so fewer candidates are cheaper; this measures what they cost in
quality. Two measurements:

* `served`: a ranker trained on the widest lists (`WIDE`: retrieval 200, content 50, itemcf
  100, the whole union ranked; the defaults before this study) ranks each option's
  candidate lists: what serving that option with that ranker gives. One ranker build for
  every option.
* `retrained` (the options named by `--retrain`): a ranker trained on the option's own
  lists (what `make artifacts` builds once the option is the default), measured on them.
  "seed 43" retrains the default with another seed: the spread a retrain alone causes.

Noise: each option's difference to `WIDE` is bootstrapped over validation users (paired:
the same resampled users for both, `BOOTSTRAP` resamples), giving its standard error; a
retrained option also differs by the seed spread above. The choice (`choose`): the retrained
option with the fewest candidates per user whose loss is within the noise, max(2 standard
errors, the seed spread); `WIDE` when none is.

The record goes into `tuning.json` as the `candidates` study (the other studies kept), so
`make eval` reports it with the tuning record; the code's defaults (`CandidateConfig`,
`serve_config.yaml`) are set to the choice.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BOOTSTRAP = 2000
BOOTSTRAP_SEED = 0
WIDE: dict[str, int] = {"retrieval_n": 200, "content_n": 50, "itemcf_n": 100, "max_ranked": 350}
"""The reference: every candidate of the three sources' default lists ranked."""
REFERENCE = "max_ranked 350"
SEED_OPTION = "seed 43"
RETRAIN: tuple[str, ...] = (SEED_OPTION,)
"""The options `make tune` retrains (`--retrain` alone)."""

log = logging.getLogger(__name__)


def options() -> dict[str, dict[str, Any]]:
    """Option name -> changes to `WIDE` (the first, `REFERENCE`, changes nothing)."""
    out: dict[str, dict[str, Any]] = {
        f"max_ranked {m}": {"max_ranked": m} for m in (350, 250, 200, 150, 125, 100, 75)
    }
    out.update(
        {
            "retrieval 150": {"retrieval_n": 150},
            "retrieval 100": {"retrieval_n": 100},
            "itemcf 50": {"itemcf_n": 50},
            "content 25": {"content_n": 25},
            "retrieval 100, itemcf 50": {"retrieval_n": 100, "itemcf_n": 50},
            "retrieval 100, content 25, itemcf 50": {
                "retrieval_n": 100,
                "content_n": 25,
                "itemcf_n": 50,
            },
            "retrieval 100, itemcf 50, max_ranked 100": {
                "retrieval_n": 100,
                "itemcf_n": 50,
                "max_ranked": 100,
            },
        }
    )
    return out


def paired_delta(
    base: Mapping[int, float], other: Mapping[int, float], resamples: int = BOOTSTRAP
) -> dict[str, float]:
    """Mean per-user difference other - base and its bootstrap standard error (the same
    resampled users for both systems)."""
    users = sorted(base)
    diff = np.array([other[u] - base[u] for u in users], dtype=np.float64)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[picks].mean(axis=1)
    return {"delta": float(diff.mean()), "se": float(means.std(ddof=1))}


def study(
    variant: str,
    artifacts_dir: Path,
    retrain: Sequence[str],
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Runs the measurements (see the module doc) and returns the record; `on_progress`
    gets the record so far after the served options and after each retrained one."""
    import pandas as pd

    from models.data import load_dataset, stratified_split
    from models.evaluation.split_run import SplitRun, split_sources, trained_ranker
    from models.evaluation.tuning import VALIDATION_RATIO, VALIDATION_SEED
    from models.metrics.protocol import candidate_recall
    from models.metrics.ranking import ndcg_per_user
    from models.ranking.build import reuse_fit_retrieval
    from models.ranking.config import RankerConfig
    from movierec.layout import ArtifactLayout

    unknown = sorted(set(retrain) - set(options()) - {SEED_OPTION})
    if unknown:
        raise ValueError(f"unknown options to retrain: {unknown}")
    started = time.perf_counter()
    layout = ArtifactLayout.of(artifacts_dir, variant, "eval")
    train = pd.read_parquet(layout.splits_dir / "train.parquet")
    fit, validation = stratified_split(train, VALIDATION_RATIO, VALIDATION_SEED)
    run = SplitRun(fit, validation, load_dataset(variant), layout.content_dir)
    base = RankerConfig().replace(candidates=WIDE)
    record: dict[str, Any] = {
        "measures": "ranked nDCG@10 on validation against the candidate settings",
        "split": {"ratio": VALIDATION_RATIO, "seed": VALIDATION_SEED, "test_split_read": False},
        "users": len(run.users),
        "reference": WIDE,
        "noise": f"paired bootstrap over validation users, {BOOTSTRAP} resamples",
    }
    k = run.k

    def measure(setup: Any, changes: Mapping[str, Any]) -> tuple[dict[str, Any], dict[int, float]]:
        cand = base.replace(candidates=dict(changes)).candidates
        candidates = setup.candidates(cand)
        ranked = setup.rank(candidates)
        merged = {u: [c.movie_id for c in items] for u, items in candidates.items()}
        figures = {
            "candidates": cand.counts | {"max_ranked": cand.max_ranked},
            "mean_list_length": float(np.mean([len(c) for c in candidates.values()])),
            f"ndcg@{k}": run.metrics(ranked)[f"ndcg@{k}"],
            "candidate_recall": candidate_recall(merged, run.relevant, cand.max_ranked),
        }
        return figures, ndcg_per_user(ranked, run.relevant, k)

    with reuse_fit_retrieval():
        sources = split_sources(run, base.candidates, base.itemcf)
        with trained_ranker(run, base, sources) as setup:
            record["reference_build_seconds"] = setup.build_metrics.get("seconds")
            served: dict[str, Any] = {}
            per_user: dict[str, dict[int, float]] = {}
            for name, changes in options().items():
                served[name], per_user[name] = measure(setup, changes)
                log.info("served %s: %s", name, served[name])
            for name in served:
                served[name]["vs_reference"] = paired_delta(per_user[REFERENCE], per_user[name])
            record["served"] = served
        retrained: dict[str, Any] = {}
        record["retrained"] = retrained
        record["chosen"], record["noise_bound"] = choose(record)
        if on_progress is not None:
            on_progress(record)
        for name in retrain:
            changes = {} if name == SEED_OPTION else options()[name]
            config = base.replace(candidates=dict(changes))
            if name == SEED_OPTION:
                config = config.replace(seed=base.seed + 1)
            with trained_ranker(run, config, sources) as setup:
                figures, users = measure(setup, changes)
            figures["vs_reference"] = paired_delta(per_user[REFERENCE], users)
            figures["build_seconds"] = setup.build_metrics.get("seconds")
            retrained[name] = figures
            log.info("retrained %s: %s", name, figures)
            record["chosen"], record["noise_bound"] = choose(record)
            if on_progress is not None:
                on_progress(record)
    record["seconds"] = round(time.perf_counter() - started, 1)
    return record


def choose(record: Mapping[str, Any]) -> tuple[str, float]:
    """The retrained option with the fewest candidates per user that loses at most the
    noise against `REFERENCE` (`REFERENCE` when none does), and that noise bound."""
    seed = record["retrained"].get(SEED_OPTION)
    spread = abs(seed["vs_reference"]["delta"]) if seed else 0.0
    chosen, bound = REFERENCE, spread
    length = record["served"][REFERENCE]["mean_list_length"]
    for name, figures in record["retrained"].items():
        if name == SEED_OPTION:
            continue
        noise = max(2.0 * figures["vs_reference"]["se"], spread)
        if figures["vs_reference"]["delta"] >= -noise and figures["mean_list_length"] < length:
            chosen, bound, length = name, noise, figures["mean_list_length"]
    return chosen, bound


def defaults_are_chosen(chosen: str) -> bool | None:
    """Whether `CandidateConfig()`'s counts and cut are the study's choice (None: the option
    is no longer defined)."""
    from models.ranking.config import CandidateConfig

    if chosen not in options():
        return None
    wanted = {**WIDE, **options()[chosen]}
    default = CandidateConfig()
    return all(getattr(default, key) == value for key, value in wanted.items())


def main(argv: list[str] | None = None) -> int:
    """Parses arguments, runs the study, writes the JSON; returns the exit code."""
    from movierec.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m models.evaluation.candidate_study", description=__doc__
    )
    parser.add_argument("--variant", default=settings.dataset)
    parser.add_argument("--artifacts-dir", type=Path, default=settings.artifacts_dir)
    parser.add_argument(
        "--retrain", nargs="*", default=list(RETRAIN), help="options to train a ranker for"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("feast", "absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    def save(record: dict[str, Any]) -> None:
        record["default_is_chosen"] = defaults_are_chosen(record["chosen"])
        save_study(args.out_dir, args.variant, record)

    from models.evaluation.tuning import reported

    record = reported(lambda: study(args.variant, args.artifacts_dir, args.retrain, save))
    if record is None:
        return 2
    record["default_is_chosen"] = defaults_are_chosen(record["chosen"])
    path = save_study(args.out_dir, args.variant, record)
    for kind in ("served", "retrained"):
        for name, figures in record[kind].items():
            delta = figures["vs_reference"]
            print(
                f"{kind:<9} {name:<42} list {figures['mean_list_length']:6.1f}  "
                f"nDCG@10 {figures['ndcg@10']:.4f}  delta {delta['delta']:+.4f} "
                f"(se {delta['se']:.4f})"
            )
    print(f"chosen: {record['chosen']} (noise bound {record['noise_bound']:.4f})")
    print(f"wrote the candidates study into {path}")
    return 0


def save_study(out_dir: Path, variant: str, record: dict[str, Any]) -> Path:
    """Writes `record` as the `candidates` study of `tuning.json` (its other studies kept;
    a record of another variant is replaced)."""
    from models.evaluation.tuning import TUNING_JSON

    path = Path(out_dir) / TUNING_JSON
    tuning: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if tuning.get("variant") != variant:
        tuning = {"variant": variant, "complete": False, "studies": {}}
    tuning.setdefault("studies", {})["candidates"] = record
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(tuning, indent=2) + "\n")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    sys.exit(main())
