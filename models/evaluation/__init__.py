"""Offline top-k evaluation: ranking metrics, the evaluation protocol and baselines."""

from models.evaluation.metrics import (
    RankingMetrics,
    map_at_k,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

__all__ = [
    "RankingMetrics",
    "map_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]
