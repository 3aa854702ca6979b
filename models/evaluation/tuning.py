"""Honest tuning: every choice made on a validation split carved from the training split.

    python -m models.evaluation.tuning [--variant ml-100k] [--studies retrieval itemcf ranker]
    (make tune)

The validation split is the evaluation protocol one level down: each user's TRAINING ratings
(the eval tree's `splits/train.parquet`) split again 75/25 at random (`VALIDATION_SEED`).
Everything is trained on the 75 % part and measured on the 25 % part; the test split is not
read. Studies, in order (each uses the previous ones' choices):

* `retrieval`: the two-tower embedding size (retrieval alone, nDCG@10);
* `itemcf`: the item-to-item source's method and parameters (the source alone, nDCG@10);
* `ranker`: candidate counts, `max_ranked`, ranker features and loss (ranked nDCG@10, with
  the ranked output's ablation of each source);
* `candidates`: how many candidates per source and in all are worth ranking
  (`models.evaluation.candidate_study`, which also runs alone and updates only its study).

The best option of each study by validation nDCG@10 is the choice; `tuning.json` records
every option's figures, the choice, and whether the code's defaults (what `make artifacts`
builds and `make eval` measures once on the test split) are the choices. `make eval` copies
this record into `quality.json`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TUNING_JSON = "tuning.json"
VALIDATION_RATIO = 0.75
VALIDATION_SEED = 1
STUDIES = ("retrieval", "itemcf", "ranker", "candidates")

log = logging.getLogger(__name__)


def retrieval_options() -> dict[str, dict[str, Any]]:
    """Two-tower options: name -> `RetrievalConfig` overrides."""
    return {"dim64": {"embedding_dim": 64, "id_embedding_dim": 64}, "dim128": {}}


def itemcf_options() -> dict[str, dict[str, Any]]:
    """Item-to-item options: name -> `ItemCFConfig` fields."""
    options: dict[str, dict[str, Any]] = {}
    for lam in (250.0, 500.0, 1000.0):
        options[f"ease_l{int(lam)}_k200"] = {"method": "ease", "ease_lambda": lam, "top_k": 200}
    options["ease_l500_k50"] = {"method": "ease", "ease_lambda": 500.0, "top_k": 50}
    for shrink in (0.0, 10.0):
        options[f"cosine_s{int(shrink)}_k50"] = {"method": "cosine", "shrink": shrink, "top_k": 50}
    return options


def ranker_options() -> dict[str, dict[str, Any]]:
    """Ranker options: name -> `RankerConfig.replace` arguments (candidates partial)."""
    from models.ranking.features_catalog import (
        CANDIDATE_FEATURES,
        DEMOGRAPHIC_FEATURES,
        GENRE_FEATURES,
        ITEMCF_FEATURES,
        MOVIE_FEATURES,
        USER_FEATURES,
    )

    before = (*CANDIDATE_FEATURES, *MOVIE_FEATURES, *DEMOGRAPHIC_FEATURES)
    rich = (*before, *USER_FEATURES, *GENRE_FEATURES)
    two = {"itemcf_n": 0}
    return {
        "before: rrf top-100, 2 sources": {
            "candidates": {**two, "max_ranked": 100},
            "features": before,
        },
        "union of 2 sources": {"candidates": {**two, "max_ranked": 250}, "features": before},
        "union of 2 sources + user/genre features": {
            "candidates": {**two, "max_ranked": 250},
            "features": rich,
        },
        "union of 3 sources (itemcf 100) + user/genre features": {
            "candidates": {"itemcf_n": 100, "max_ranked": 350},
            "features": (*rich, *ITEMCF_FEATURES),
        },
        "union of 3 sources (itemcf 100) + user/genre features, softmax": {
            "candidates": {"itemcf_n": 100, "max_ranked": 350},
            "features": (*rich, *ITEMCF_FEATURES),
            "loss": "softmax",
        },
    }


def _best(results: Mapping[str, float]) -> str:
    return max(results, key=lambda name: results[name])


def tune(
    variant: str,
    artifacts_dir: Path,
    studies: tuple[str, ...],
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Runs the studies on the validation split; returns the record (see the module doc).

    `on_progress` gets the record so far after every option (to save partial results).
    """
    import pandas as pd

    from models.data import load_dataset, stratified_split
    from models.evaluation.split_run import SplitRun, ranked_run
    from models.itemcf.similarity import ItemCFConfig
    from models.ranking.build import reuse_fit_retrieval
    from models.ranking.config import RankerConfig
    from models.retrieval.config import RetrievalConfig
    from movierec.layout import ArtifactLayout

    layout = ArtifactLayout.of(artifacts_dir, variant, "eval")
    train = pd.read_parquet(layout.splits_dir / "train.parquet")
    fit, validation = stratified_split(train, VALIDATION_RATIO, VALIDATION_SEED)
    run = SplitRun(fit, validation, load_dataset(variant), layout.content_dir)
    record: dict[str, Any] = {
        "variant": variant,
        "complete": False,
        "split": {
            "what": "the eval tree's training split, split again per user at random",
            "ratio": VALIDATION_RATIO,
            "seed": VALIDATION_SEED,
            "train_rows": len(fit),
            "validation_rows": len(validation),
            "test_split_read": False,
        },
        "criterion": "nDCG@10 on the validation part, highest wins",
        "studies": {},
    }
    metric = f"ndcg@{run.k}"
    chosen_retrieval: dict[str, Any] = {}
    chosen_itemcf: dict[str, Any] = {}
    started = time.perf_counter()
    with reuse_fit_retrieval():
        if "retrieval" in studies:
            chosen_retrieval = _source_study(
                record,
                "retrieval",
                "two-tower retrieval alone",
                retrieval_options(),
                lambda overrides: run.retrieval_lists(run.k, overrides),
                RetrievalConfig(),
                run.metrics,
                on_progress,
            )
            run.retrieval = chosen_retrieval
        if "itemcf" in studies:
            chosen_itemcf = _source_study(
                record,
                "itemcf",
                "the item-to-item source alone",
                itemcf_options(),
                lambda fields: run.itemcf_lists(run.k, ItemCFConfig(**fields)),
                ItemCFConfig(),
                run.metrics,
                on_progress,
            )
        if "ranker" in studies:
            outcomes: dict[str, Any] = {}
            base = RankerConfig()
            for name, changes in ranker_options().items():
                config = base.replace(itemcf=chosen_itemcf, **changes)
                outcomes[name] = ranked_run(run, config)
                log.info("ranker %s: %s", name, outcomes[name]["systems"]["ranked"][metric])
                record["studies"]["ranker"] = {"options": outcomes}
                _progress(on_progress, record)
            best = _best({n: o["systems"]["ranked"][metric] for n, o in outcomes.items()})
            chosen = base.replace(itemcf=chosen_itemcf, **ranker_options()[best])
            record["studies"]["ranker"] = {
                "measures": "ranked output (and every system, the ablation) on validation",
                "options": outcomes,
                "chosen": best,
                "default_is_chosen": _same_ranker(base, chosen, "candidates" in studies),
            }
    if "candidates" in studies:
        from models.evaluation import candidate_study

        found = candidate_study.study(variant, artifacts_dir, candidate_study.RETRAIN)
        found["default_is_chosen"] = candidate_study.defaults_are_chosen(found["chosen"])
        record["studies"]["candidates"] = found
    record["seconds"] = round(time.perf_counter() - started, 1)
    record["complete"] = True
    return record


def _source_study(
    record: dict[str, Any],
    study: str,
    measures: str,
    options: Mapping[str, dict[str, Any]],
    lists_of: Callable[[dict[str, Any]], Mapping[int, list[tuple[int, float]]]],
    default: Any,
    metrics: Callable[[Mapping[int, list[int]]], dict[str, float]],
    on_progress: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """One source measured alone per option; records the figures and returns the choice."""
    figures: dict[str, dict[str, float]] = {}
    for name, fields in options.items():
        lists = lists_of(fields)
        figures[name] = metrics({u: [m for m, _ in v] for u, v in lists.items()})
        log.info("%s %s: %s", study, name, figures[name]["ndcg@10"])
        record["studies"][study] = {"options": figures}
        _progress(on_progress, record)
    best = _best({name: values["ndcg@10"] for name, values in figures.items()})
    chosen = dict(options[best])
    record["studies"][study] = {
        "measures": measures,
        "options": figures,
        "chosen": best,
        "default_is_chosen": all(getattr(default, k) == v for k, v in chosen.items()),
    }
    return chosen


def _progress(callback: Callable[[dict[str, Any]], None] | None, record: dict[str, Any]) -> None:
    if callback is not None:
        callback(record)


CANDIDATE_COUNTS = ("retrieval_n", "content_n", "itemcf_n", "max_ranked")
"""Decided by the `candidates` study when the record has one (not by the ranker study)."""


def _same_ranker(default: Any, chosen: Any, counts_chosen_elsewhere: bool = False) -> bool:
    a, b = default.to_dict(), chosen.to_dict()
    a.pop("itemcf", None), b.pop("itemcf", None)
    if counts_chosen_elsewhere:
        for config in (a, b):
            for key in CANDIDATE_COUNTS:
                config["candidates"].pop(key, None)
    return bool(a == b)


def tuning_record(out_dir: Path, variant: str) -> dict[str, Any]:
    """The record `make tune` wrote for `variant` (a note when there is none)."""
    path = Path(out_dir) / TUNING_JSON
    if not path.exists():
        return {"status": f"not run: no {path} (make tune)"}
    record = json.loads(path.read_text())
    if record.get("variant") != variant:
        return {"status": f"{path} is for {record.get('variant')!r}, not {variant!r}"}
    for study, result in record.get("studies", {}).items():
        if "chosen" in result:
            result["default_is_chosen_when_tuned"] = result.get("default_is_chosen")
            result["default_is_chosen"] = defaults_are_chosen(study, result["chosen"], record)
    return dict(record)


def defaults_are_chosen(study: str, chosen: str, record: Mapping[str, Any]) -> bool | None:
    """Whether the code's defaults now (what `make eval` measures) are the study's choice
    (None: the option is no longer defined)."""
    from models.itemcf.similarity import ItemCFConfig
    from models.ranking.config import RankerConfig
    from models.retrieval.config import RetrievalConfig

    if study == "retrieval" and chosen in retrieval_options():
        default = RetrievalConfig()
        return all(getattr(default, k) == v for k, v in retrieval_options()[chosen].items())
    if study == "itemcf" and chosen in itemcf_options():
        default_cf = ItemCFConfig()
        return all(getattr(default_cf, k) == v for k, v in itemcf_options()[chosen].items())
    studies = record.get("studies", {})
    if study == "ranker" and chosen in ranker_options():
        cf_choice = studies.get("itemcf", {}).get("chosen")
        itemcf = itemcf_options().get(cf_choice, {}) if cf_choice else {}
        base = RankerConfig()
        counts_elsewhere = "chosen" in studies.get("candidates", {})
        return _same_ranker(
            base, base.replace(itemcf=itemcf, **ranker_options()[chosen]), counts_elsewhere
        )
    if study == "candidates":
        from models.evaluation.candidate_study import defaults_are_chosen as counts_chosen

        return counts_chosen(chosen)
    return None


def main(argv: list[str] | None = None) -> int:
    """Parses arguments, tunes, writes tuning.json; returns the exit code."""
    from movierec.settings import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m models.evaluation.tuning", description=__doc__)
    parser.add_argument("--variant", default=settings.dataset)
    parser.add_argument("--artifacts-dir", type=Path, default=settings.artifacts_dir)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--studies", nargs="+", choices=STUDIES, default=list(STUDIES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("feast", "absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    path = args.out_dir / TUNING_JSON

    def save(record: dict[str, Any]) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(record, indent=2, default=_plain) + "\n")
        os.replace(tmp, path)

    record = reported(lambda: tune(args.variant, args.artifacts_dir, tuple(args.studies), save))
    if record is None:
        return 2
    save(record)
    print(f"wrote {path}")
    return 0


T = TypeVar("T")


def reported(work: Callable[[], T]) -> T | None:
    """`work()`, or None after printing `error: ...` on stderr (no traceback)."""
    try:
        return work()
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
    except Exception as exc:  # reported without a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


if __name__ == "__main__":
    sys.exit(main())
