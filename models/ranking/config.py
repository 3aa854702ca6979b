"""Hyperparameters of the ranker and of the candidate sets it is trained and evaluated on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from models.ranking.features_catalog import (
    CANDIDATE_FEATURES,
    DEMOGRAPHIC_FEATURES,
    FEATURE_INPUTS,
    GENRE_FEATURES,
    ITEMCF_FEATURES,
    MOVIE_FEATURES,
    USER_FEATURES,
)

Loss = Literal["bce", "softmax"]
FeatureTime = Literal["fit_end", "rating_time"]
Aggregation = Literal["sum", "max"]


@dataclass(frozen=True)
class CandidateConfig:
    """How candidates are generated: the Controller's `user_config.candidates`/`weights`.

    Keep these equal to the served Controller configuration (serve_config.yaml): the ranker
    is trained on, and evaluated with, exactly these candidate lists.

    Attributes:
        retrieval_n: Movies asked from the two-tower model (seen ones dropped afterwards).
        content_n: Unseen movies asked from vector search.
        n_seeds: The user's top-liked movies used as vector-search seeds.
        like_threshold: A rating >= this is a "like" (Feast `liked_movie_ids`).
        content_aggregation: How seed similarities combine ("sum" or "max").
        retrieval_weight: Reciprocal-rank-fusion weight of the retrieval list.
        content_weight: Reciprocal-rank-fusion weight of the vector-search list.
        itemcf_n: Unseen movies asked from the item-to-item source (0: not used).
        itemcf_weight: Reciprocal-rank-fusion weight of the item-to-item list.
        max_ranked: At most this many merged candidates (best merged first) are ranked;
            at least `union` sends every candidate to the ranker.
    """

    retrieval_n: int = 200
    content_n: int = 50
    n_seeds: int = 10
    like_threshold: float = 4.0
    content_aggregation: Aggregation = "sum"
    retrieval_weight: float = 1.0
    content_weight: float = 1.0
    itemcf_n: int = 100
    itemcf_weight: float = 1.0
    max_ranked: int = 350

    def __post_init__(self) -> None:
        counts = (self.retrieval_n, self.content_n, self.itemcf_n)
        if min(counts) < 0 or sum(counts) == 0:
            raise ValueError("retrieval_n, content_n and itemcf_n must be >= 0, not all 0")
        if self.n_seeds < 1 or self.max_ranked < 1:
            raise ValueError("n_seeds and max_ranked must be >= 1")
        if self.content_aggregation not in ("sum", "max"):
            raise ValueError(
                f"content_aggregation must be 'sum' or 'max': {self.content_aggregation!r}"
            )

    @property
    def weights(self) -> dict[str, float]:
        """Source name -> fusion weight, as `merge_candidates` takes them."""
        return {
            "retrieval": self.retrieval_weight,
            "content": self.content_weight,
            "itemcf": self.itemcf_weight,
        }

    @property
    def counts(self) -> dict[str, int]:
        """Source name -> candidates asked from it."""
        return {"retrieval": self.retrieval_n, "content": self.content_n, "itemcf": self.itemcf_n}

    @property
    def union(self) -> int:
        """The largest possible merged list (every source's candidates, none shared)."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class RankerConfig:
    """Everything that defines a ranker build.

    Attributes:
        candidates: Candidate generation (shared by training and evaluation).
        label_fraction: Share of each user's TRAINING ratings held out as labels; the
            retrieval model that makes the training candidates only sees the rest.
        split_seed: Seed of that per-user split.
        folds: Number of independent fit/label splits (seeds split_seed, split_seed + 1,
            ...), each with its own fit-part retrieval model; their rows are pooled.
        retrieval: Overrides of the fit-part retrieval model's `RetrievalConfig`; by default
            it is trained with the served retrieval model's configuration.
        itemcf: Overrides of the fit-part item-to-item source's `ItemCFConfig`; by default
            the served one's (its `itemcf.json`).
        feature_time: When (and from which snapshots) a training row's Feast features are
            read, always through the point-in-time join. "fit_end": snapshots built from the
            fit part only (the label part never enters a feature), every row read at the
            fit part's newest snapshot, as serving reads the newest snapshot of all training
            ratings. "rating_time": the pipeline's snapshots of the whole training split,
            a positive read at its rating's time and a negative at one of the user's
            label-part rating times (features only from ratings strictly before).
        loss: "bce": pointwise watched-or-not on every candidate; "softmax": listwise
            softmax cross-entropy over each user's candidate list.
        features: Derived features fed to the network, by name (see
            `models.ranking.features_catalog.FEATURE_INPUTS`); inputs.json lists the raw
            inputs they read.
        hidden_dims: ReLU layers of the scoring network.
        dropout: Dropout after each hidden layer.
        id_embedding_dim: Size of the movie-id embedding (feature "movie_id").
        l2: L2 penalty on the kernels and embeddings.
        user_weight_exponent: Weight each user's rows by n_u^-a (n_u: the user's label-part
            ratings), rescaled to mean 1: the metrics average over users, so heavy users
            should not dominate the loss. 0 weights every row equally.
        learning_rate: Adam learning rate (cosine-decayed to 0 over the run).
        epochs: Passes over the training lists.
        ensemble: Networks trained with seeds seed, seed + 1, ...; the exported model
            averages their logits.
        batch_size: Candidate rows per step ("bce") or user lists per step ("softmax").
        validation_users: Share of users whose lists are held out to report the ranker's
            validation metrics (0 trains on every user).
        seed: Seed of every random choice (split, negatives' timestamps, TensorFlow).
        intra_op_threads: TensorFlow intra-op threads.
        inter_op_threads: TensorFlow inter-op threads.
    """

    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    label_fraction: float = 0.2
    split_seed: int = 7
    folds: int = 1
    retrieval: dict[str, Any] = field(default_factory=dict)
    itemcf: dict[str, Any] = field(default_factory=dict)
    feature_time: FeatureTime = "fit_end"
    loss: Loss = "bce"
    features: tuple[str, ...] = (
        *CANDIDATE_FEATURES,
        *MOVIE_FEATURES,
        *DEMOGRAPHIC_FEATURES,
        *USER_FEATURES,
        *GENRE_FEATURES,
        *ITEMCF_FEATURES,
    )
    hidden_dims: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    id_embedding_dim: int = 16
    l2: float = 1e-5
    user_weight_exponent: float = 0.0
    learning_rate: float = 3e-3
    epochs: int = 8
    ensemble: int = 1
    batch_size: int = 512
    validation_users: float = 0.1
    seed: int = 42
    intra_op_threads: int = 2
    inter_op_threads: int = 2

    def __post_init__(self) -> None:
        if not 0.0 < self.label_fraction < 1.0:
            raise ValueError("label_fraction must be in (0, 1)")
        if self.feature_time not in ("fit_end", "rating_time"):
            raise ValueError(
                f"feature_time must be 'fit_end' or 'rating_time': {self.feature_time!r}"
            )
        if self.loss not in ("bce", "softmax"):
            raise ValueError(f"loss must be 'bce' or 'softmax', not {self.loss!r}")
        unknown = sorted(set(self.features) - set(FEATURE_INPUTS))
        if unknown or not set(self.features) - {"gender", "occupation", "movie_id"}:
            raise ValueError(f"unknown ranker features {unknown}; known: {sorted(FEATURE_INPUTS)}")
        if not 0.0 <= self.dropout < 1.0 or not 0.0 <= self.validation_users < 0.5:
            raise ValueError("dropout must be in [0, 1) and validation_users in [0, 0.5)")
        if self.folds < 1:
            raise ValueError("folds must be >= 1")
        if self.epochs < 1 or self.batch_size < 1 or self.ensemble < 1:
            raise ValueError("epochs and batch_size must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (tuples become lists)."""
        out = asdict(self)
        out["features"] = list(self.features)
        out["hidden_dims"] = list(self.hidden_dims)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankerConfig:
        """Inverse of `to_dict`; unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown RankerConfig keys: {sorted(unknown)}")
        values = dict(data)
        if isinstance(values.get("candidates"), dict):
            values["candidates"] = CandidateConfig(**values["candidates"])
        for name in ("features", "hidden_dims"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def replace(self, **changes: Any) -> RankerConfig:
        """A copy with `changes` applied; `candidates` may be a partial dict of changes."""
        current = self.to_dict()
        values = {**current, **changes}
        if isinstance(changes.get("candidates"), CandidateConfig):
            values["candidates"] = asdict(changes["candidates"])
        elif isinstance(changes.get("candidates"), dict):
            values["candidates"] = {**current["candidates"], **changes["candidates"]}
        return RankerConfig.from_dict(values)
