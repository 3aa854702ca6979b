"""Do the Controller's candidate settings match what the served ranker was trained with?

A ranker learns from candidate lists made with given counts per source, fusion weights and
`max_ranked` (its `ranking/ranker.json`, `config.candidates`). Served with other settings
(fewer sources, a cut at another length) it sees lists unlike its training lists and ranks
worse, silently. The Controller checks its `user_config` against the ranker of the tree it
serves at every (re)configuration: a mismatch is logged as a warning and shown in
`/healthz` (the controller's `candidates` detail, status "degraded").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deployments.config import ControllerConfig
from movierec.stages import CONTENT, ITEMCF, RETRIEVAL

logger = logging.getLogger(__name__)

RANKER_METADATA = "ranker.json"
_COUNT_KEYS = {RETRIEVAL: "retrieval_n", CONTENT: "content_n", ITEMCF: "itemcf_n"}
_WEIGHT_KEYS = {RETRIEVAL: "retrieval_weight", CONTENT: "content_weight", ITEMCF: "itemcf_weight"}


def trained_candidates(ranking_dir: Path) -> dict[str, Any] | None:
    """The candidate settings a ranker was trained with (None: no or an older ranker.json)."""
    path = Path(ranking_dir) / RANKER_METADATA
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    candidates = meta.get("config", {}).get("candidates")
    return dict(candidates) if isinstance(candidates, dict) else None


def candidate_mismatch(config: ControllerConfig, trained: Mapping[str, Any]) -> list[str]:
    """What differs between the Controller's settings and the ranker's training settings,
    one readable line per setting (empty: they match).

    Counts and `max_ranked` must be equal; a fusion weight only matters when `max_ranked`
    cuts the merged list, so weights are compared only then.
    """
    out: list[str] = []
    counts = config.candidates
    served_counts = {RETRIEVAL: counts.retrieval, CONTENT: counts.content, ITEMCF: counts.itemcf}
    for source, key in _COUNT_KEYS.items():
        expected = int(trained.get(key, 0))
        if served_counts[source] != expected:
            out.append(
                f"candidates.{source}={served_counts[source]}, ranker trained with {expected}"
            )
    expected_max = int(trained.get("max_ranked", 0))
    if counts.max_ranked != expected_max:
        out.append(f"candidates.max_ranked={counts.max_ranked}, ranker trained with {expected_max}")
    union = sum(int(trained.get(key, 0)) for key in _COUNT_KEYS.values())
    if expected_max < union:
        for source, key in _WEIGHT_KEYS.items():
            served = config.weights.get(source, 1.0)
            wanted = float(trained.get(key, 1.0))
            if int(trained.get(_COUNT_KEYS[source], 0)) and abs(served - wanted) > 1e-9:
                out.append(f"weights.{source}={served}, ranker trained with {wanted}")
    return out


def check_candidates(config: ControllerConfig, ranking_dir: Path) -> list[str]:
    """`candidate_mismatch` against the ranker in `ranking_dir`, logged when not empty
    (a ranker without training settings is reported as such)."""
    trained = trained_candidates(ranking_dir)
    if trained is None:
        problems = [f"no candidate settings in {Path(ranking_dir) / RANKER_METADATA}"]
    else:
        problems = candidate_mismatch(config, trained)
    if problems:
        logger.warning("candidate settings differ from the ranker's: %s", "; ".join(problems))
    return problems
