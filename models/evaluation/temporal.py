"""The second protocol: temporal leave-last-out on the same dataset, with the same defaults.

Each user's most recent rating is the test item (`models.data.leave_last_n_out`); the whole
recommender (two-tower, item-to-item, content, features, ranker) is trained on the rest
with the code's defaults, exactly as `make artifacts` would, and measured once. Nothing is
tuned on it. The result is cached in `<artifacts>/<variant>/eval-temporal.json`, keyed by
the eval tree's fingerprints (any change of code, configuration or data rebuilds it).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

CACHE_FILE = "eval-temporal.json"


def temporal_report(
    variant: str, layout: Any, fingerprints: dict[str, str], k: int = 10
) -> dict[str, Any]:
    """Every system (and the ablation) on the temporal leave-last-out split."""
    from models.data import leave_last_n_out, load_dataset
    from models.evaluation.split_run import SplitRun, ranked_run
    from models.ranking.config import RankerConfig

    cache = layout.root.parent / f"{layout.root.name}-{CACHE_FILE}"
    key = {"fingerprints": fingerprints, "k": k}
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            return dict(cached["report"])
    started = time.perf_counter()
    dataset = load_dataset(variant)
    train, test = leave_last_n_out(dataset.ratings, 1)
    run = SplitRun(train, test, dataset, layout.content_dir, k=k)
    log.info("temporal protocol: building on %d ratings, testing on %d", len(train), len(test))
    report: dict[str, Any] = {
        "protocol": {
            "split": "temporal leave-last-out: each user's most recent rating is the test item",
            "k": k,
            "relevance": "the held-out rating",
            "seen_removed": True,
            "users": len(run.users),
            "tuned_on": False,
            "configuration": "the code's defaults (those chosen on the stratified validation)",
        },
        **ranked_run(run, RankerConfig()),
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    cache.write_text(json.dumps({"key": key, "report": report}, indent=2, default=str) + "\n")
    return report


__all__ = ["temporal_report"]
