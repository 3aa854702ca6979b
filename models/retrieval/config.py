"""Hyperparameters of the two-tower retrieval model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

Negatives = Literal["in_batch", "full"]
Optimizer = Literal["adam", "adagrad"]


@dataclass(frozen=True)
class RetrievalConfig:
    """Everything that defines a training run of the two-tower model.

    The defaults are the configuration selected on a validation split of ml-100k (in-batch
    softmax with logQ correction, 64-d linear towers over id + side-feature embeddings (64 over
    128 chosen by `make tune` on the validation split, `benchmarks/results/tuning.json`),
    dropout 0.3, L2 0.1, Adam 0.01 with cosine decay, 12 epochs; ~30 s on 2 CPU cores).

    Attributes:
        embedding_dim: Output size D of both towers; the retrieval score is a dot product of
            two [D] vectors.
        id_embedding_dim: Size of the user-id and movie-id embeddings inside the towers.
        feature_embedding_dim: Size of the categorical side-feature embeddings (gender,
            occupation, zip prefix, age/year buckets, genres, title tokens).
        hidden_dims: Sizes of the ReLU layers each tower applies to its concatenated inputs
            before the final linear projection to `embedding_dim`. Empty: linear towers.
        use_user_id: Give every known user its own embedding. Without it the user tower only
            sees side features and history (it then generalizes to users unseen in training).
        use_user_features: Use age/gender/occupation/zip when the variant has a users table.
        zip_prefix_len: Leading zip-code characters used as a feature; 0 disables it.
        use_history: Add the mean of the user's training-set movie embeddings to the user tower
            (target item left out during training). The history table is baked into the model.
        max_history: Most recent training interactions kept per user for `use_history`.
        history_dropout: During training, drop each history item with this probability
            (denoising; the user tower must not rely on a few items).
        use_movie_features: Use genres, title tokens and year in the movie tower.
        title_max_tokens: Vocabulary size of the title TextVectorization layer.
        title_sequence_length: Title tokens kept per movie.
        normalize: L2-normalize both tower outputs (cosine similarity).
        temperature: Logits are divided by this. Needed (~0.05-0.2) when `normalize` is set.
        negatives: "in_batch": the other positives of the batch are the negatives (sampled
            softmax). "full": every movie of the catalog is a negative (exact softmax over the
            catalog; cheap when the catalog has a few thousand movies).
        logq_correction: Subtract log(sampling probability) from in-batch logits (Yi et al.
            2019) so popular movies are not over-penalized. Only used with "in_batch".
        remove_accidental_hits: Mask negatives that are the positive movie itself.
        num_hard_negatives: Keep only the hardest N negatives per row; None keeps all.
        user_weight_exponent: Weight each training example by n_u^-a (n_u: the user's number
            of training ratings), rescaled to mean 1. 0 weights every interaction equally (heavy
            users dominate the loss); 1 gives every user the same total weight, like the
            per-user average of the offline metrics.
        dropout: Dropout rate after each hidden layer and on the concatenated tower inputs.
        l2: L2 penalty on all embedding tables and dense kernels, added to the summed (not
            averaged) batch loss, so its strength is relative to `batch_size`.
        optimizer: "adam" or "adagrad".
        learning_rate: Initial learning rate.
        cosine_decay: Decay the learning rate to 0 over the run with a cosine schedule (makes
            the last epoch the best one instead of needing early stopping).
        batch_size: Training examples (user, positive movie) per step.
        epochs: Passes over the training interactions.
        seed: Seed for TensorFlow, the shuffle and the initializers.
        intra_op_threads: TensorFlow intra-op threads (0: TensorFlow's default).
        inter_op_threads: TensorFlow inter-op threads (0: TensorFlow's default).
    """

    embedding_dim: int = 64
    id_embedding_dim: int = 64
    feature_embedding_dim: int = 16
    hidden_dims: tuple[int, ...] = ()
    use_user_id: bool = True
    use_user_features: bool = True
    zip_prefix_len: int = 1
    use_history: bool = False
    max_history: int = 256
    history_dropout: float = 0.0
    use_movie_features: bool = True
    title_max_tokens: int = 5000
    title_sequence_length: int = 12
    normalize: bool = False
    temperature: float = 1.0
    negatives: Negatives = "in_batch"
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    num_hard_negatives: int | None = None
    user_weight_exponent: float = 0.0
    dropout: float = 0.3
    l2: float = 0.1
    optimizer: Optimizer = "adam"
    learning_rate: float = 0.01
    cosine_decay: bool = True
    batch_size: int = 1024
    epochs: int = 12
    seed: int = 42
    intra_op_threads: int = 2
    inter_op_threads: int = 2

    def __post_init__(self) -> None:
        if self.negatives not in ("in_batch", "full"):
            raise ValueError(f"negatives must be 'in_batch' or 'full', got {self.negatives!r}")
        if not (self.use_user_id or self.use_history or self.use_user_features):
            raise ValueError("the user tower needs the user id, the history or user features")
        if not 0.0 <= self.history_dropout < 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("dropout rates must be in [0, 1)")
        if self.optimizer not in ("adam", "adagrad"):
            raise ValueError(f"optimizer must be 'adam' or 'adagrad', got {self.optimizer!r}")
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
        if self.embedding_dim <= 0 or self.batch_size <= 0 or self.epochs < 0:
            raise ValueError("embedding_dim and batch_size must be positive, epochs >= 0")

    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serializable dict (tuples become lists)."""
        out = asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RetrievalConfig:
        """Inverse of `to_dict`; unknown keys are rejected."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown RetrievalConfig keys: {sorted(unknown)}")
        values = dict(data)
        if "hidden_dims" in values:
            values["hidden_dims"] = tuple(values["hidden_dims"])
        return cls(**values)
