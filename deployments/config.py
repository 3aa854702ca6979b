"""Typed configuration of the serving application.

Two kinds of configuration, both pydantic models that reject unknown keys:

* `ServingContext`: where the artifacts and Redis are. Fixed for a replica's lifetime; built
  once by the app builder (`deployments.app.build_app`) and passed to every deployment's
  constructor, so replicas, which run in other processes, use the same run dir, artifacts
  tree and Redis as the process that deployed them.
* One `*Config` per deployment: the runtime knobs of its Serve `user_config`. Each
  deployment's `reconfigure()` validates its dict with these models, so a `serve deploy` with
  a changed `user_config` takes effect without restarting replicas, and a typo fails the
  deploy instead of being ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from deployments.faults import FaultSettings
from movierec.events import MAX_SHOWN
from movierec.layout import ArtifactLayout, Mode
from movierec.redis_url import mask_url, resolve_redis_url
from movierec.rules import ImpressionRule, RuleConfig
from movierec.settings import get_settings
from movierec.stages import CONTENT, ITEMCF, POPULAR, RETRIEVAL, SOURCES
from movierec.storage import ArtifactSource, StoreURI, current_layout

logger = logging.getLogger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServingContext(_Strict):
    """Where a replica finds its artifacts and Redis.

    Attributes:
        artifacts_dir: Root of all artifacts trees.
        variant: MovieLens variant of the tree to serve.
        mode: "eval" or "full" tree.
        run_dir: Run dir of the embedded Redis (its state file holds the URL).
        redis_url: Explicit Redis URL; None: `REDIS_URL` of the replica's environment, else
            the embedded Redis of `run_dir` (see `movierec.redis_url.resolve_redis_url`).
            A `SecretStr`, so it never shows in reprs or logs.
        storage_uri: "" (the local tree) or `s3://bucket/prefix`: builds are fetched from
            the store into the replica's local cache (`movierec.storage`).
        s3_endpoint_url: The S3-compatible endpoint (None: the replica's AWS_ENDPOINT_URL,
            else AWS). Credentials never travel here: each node's AWS chain provides them.
        storage_cache_dir: The local cache of fetched builds (None: under artifacts_dir).
    """

    artifacts_dir: Path
    variant: str
    mode: Mode
    run_dir: Path
    redis_url: SecretStr | None = None
    storage_uri: str = ""
    s3_endpoint_url: str | None = None
    storage_cache_dir: Path | None = None

    @field_validator("storage_uri")
    @classmethod
    def _store_uri(cls, value: str) -> str:
        if value:
            StoreURI.parse(value)  # ValueError names the URI
        return value

    @property
    def artifacts(self) -> ArtifactSource:
        """Where the model stages load each `model_version` from."""
        return ArtifactSource(
            self.artifacts_dir,
            self.variant,
            self.mode,
            self.storage_uri,
            self.s3_endpoint_url,
            self.storage_cache_dir,
        )

    @property
    def layout(self) -> ArtifactLayout:
        """The artifacts tree this replica serves: the local one, or the store's current
        build fetched into the local cache once per process.

        Raises:
            movierec.storage.StorageError: The store's current build cannot be fetched.
        """
        return current_layout(self.artifacts)

    def resolve_redis_url(self, *, verify: bool = True) -> str:
        """The Redis URL (password included: log it only through `mask_url`).

        Raises:
            movierec.redis_url.RedisServerError: No Redis is configured or reachable.
        """
        base = get_settings()
        explicit = self.redis_url.get_secret_value() if self.redis_url else base.redis_url
        settings = base.model_copy(update={"run_dir": self.run_dir, "redis_url": explicit})
        url = resolve_redis_url(settings, verify=verify)
        logger.info("using Redis at %s", mask_url(url))
        return url


class CandidateCounts(_Strict):
    """How many candidates each source contributes (Controller `user_config.candidates`).

    Attributes:
        retrieval: Movies asked from the two-tower model (seen ones are dropped afterwards,
            so ask generously; clipped to the exported K).
        content: Unseen movies asked from the content source.
        itemcf: Unseen movies asked from the item-to-item source (served by Retrieval).
        popular: Popular movies merged in when a source failed, or to fill a short list.
        max_ranked: At most this many filtered candidates (best merged first) are ranked;
            the default is the whole union of the three sources, so the fusion weights do
            not decide what the ranker sees (the ranker learned the fusion from its
            training lists, made with these same counts: `deployments.candidate_check`).
    """

    retrieval: int = Field(default=200, ge=0, le=2000)
    content: int = Field(default=50, ge=0, le=1000)
    itemcf: int = Field(default=100, ge=0, le=2000)
    popular: int = Field(default=100, ge=0, le=2000)
    max_ranked: int = Field(default=350, ge=1, le=2000)


class RulesSettings(_Strict):
    """Post-ranking business rules (Controller `user_config.rules`); see `RuleConfig`."""

    genre_cap: int = Field(default=3, ge=0, le=100)
    genre_window: int = Field(default=5, ge=0, le=100)
    promoted_ids: frozenset[int] = frozenset()
    promoted_boost: float = Field(default=0.0, ge=-1e6, le=1e6)
    recency_boost: float = Field(default=0.0, ge=-1e6, le=1e6)
    recency_half_life_years: float = Field(default=5.0, gt=0.0, le=1000.0)

    def to_rule_config(self) -> RuleConfig:
        """The `movierec.rules` form."""
        return RuleConfig(
            genre_cap=self.genre_cap,
            genre_window=self.genre_window,
            promoted_ids=self.promoted_ids,
            promoted_boost=self.promoted_boost,
            recency_boost=self.recency_boost,
            recency_half_life_years=self.recency_half_life_years,
        )


class StageTimeouts(_Strict):
    """Per-stage deadlines inside a total budget, in seconds (Controller `user_config.timeouts`).

    Each stage call gets `min(its deadline, what is left of total - reserve)` (see
    `deployments.budget.Budget`). A stage that misses its deadline, or that the budget no
    longer allows, is recorded in the response's `fallbacks` and the request goes on without
    it (`degraded: true`), so a recommendation is answered within about `total` seconds
    whatever the stages do.

    Attributes:
        total: The whole recommendation request's budget.
        reserve: Kept back from every stage deadline for merging, rules and the response.
        retrieval: The Retrieval call (two-tower and item-to-item sources in one).
        features: The user's features (the seen list and the ranker's user features).
        content: The content source (the user's liked movies, then a KNN).
        ranking: The batched ranker (with the candidates' movie features it reads).
        similar: `/movies/{id}/similar` (its own request: not part of `total`).
        health: Each stage's `health()` in `/healthz` (not part of `total`).
    """

    total: float = Field(default=0.150, gt=0.0, le=60.0)
    reserve: float = Field(default=0.005, ge=0.0, le=1.0)
    retrieval: float = Field(default=0.060, gt=0.0, le=60.0)
    features: float = Field(default=0.060, gt=0.0, le=60.0)
    content: float = Field(default=0.060, gt=0.0, le=60.0)
    ranking: float = Field(default=0.080, gt=0.0, le=60.0)
    similar: float = Field(default=0.100, gt=0.0, le=60.0)
    health: float = Field(default=2.0, gt=0.0, le=60.0)

    @model_validator(mode="after")
    def _reserve_inside_total(self) -> StageTimeouts:
        if self.reserve >= self.total:
            raise ValueError(f"timeouts.reserve ({self.reserve}) must be < total ({self.total})")
        return self


class MovieCacheSettings(_Strict):
    """The Ranking replica's near cache of candidate movie features (`user_config.movie_cache`).

    Movie features only change when the pipeline materializes, so a Ranking replica keeps
    the rows it read from the online store and reads only the missing ones: on the critical
    path that saves a Redis round trip per request.

    Attributes:
        ttl_s: How long a row is kept (0 disables the cache: every request reads Feast).
        size: At most this many movies are kept.
        prefetch: At replica start, this many of the most popular movies are read in the
            background.
    """

    ttl_s: float = Field(default=60.0, ge=0.0, le=86_400.0)
    size: int = Field(default=100_000, ge=0, le=10_000_000)
    prefetch: int = Field(default=2000, ge=0, le=1_000_000)


class MonitoringSettings(_Strict):
    """The Controller's model-health metrics (`user_config.monitoring`).

    Attributes:
        coverage_window_s: Window of the catalog coverage gauge: the distinct movies a
            replica served over the last this many seconds.
    """

    coverage_window_s: float = Field(default=3600.0, gt=0.0, le=7 * 86_400.0)


class ImpressionSettings(_Strict):
    """Impressions: fatigue of movies shown without a reaction, and logging what was served
    (Controller `user_config.impressions`; see `movierec.rules.ImpressionRule`).

    Attributes:
        enabled: Apply the rule (the user's impressions come with their features).
        n: Showings within the window, since the last click, watch or rating, that make a
            movie fatigued for the user (at most the per-movie times the applier keeps).
        window_s: The window, seconds before the request.
        action: "demote" (score times `demote_factor`) or "drop".
        demote_factor: In [0, 1].
        log_served: Log every personal list served as impression events (through the
            Events deployment, in the background: never on the request path).
        log_queue: Served lists waiting to be logged, at most; past it they are dropped
            (and counted: `movierec_impression_logs_total{outcome="dropped"}`).
    """

    enabled: bool = True
    n: int = Field(default=3, ge=1, le=MAX_SHOWN)
    window_s: float = Field(default=86_400.0, ge=60.0, le=30 * 86_400.0)
    action: Literal["demote", "drop"] = "demote"
    demote_factor: float = Field(default=0.5, ge=0.0, le=1.0)
    log_served: bool = False
    log_queue: int = Field(default=1000, ge=1, le=100_000)

    def to_rule(self) -> ImpressionRule:
        """The `movierec.rules` form."""
        return ImpressionRule(self.n, self.window_s, self.action, self.demote_factor)


class ControllerConfig(_Strict):
    """The Controller's `user_config`.

    Attributes:
        model_version: Reported in every response; empty: derived from the artifacts
            manifest.
        candidates: Candidate counts per source.
        weights: Reciprocal-rank-fusion weight per source (sources not named get 1.0).
        rules: Post-ranking rules.
        timeouts: Per-stage deadlines.
        monitoring: The model-health metrics.
        impressions: The impression rule and the logging of served lists.
    """

    model_version: str = Field(default="", max_length=200)
    candidates: CandidateCounts = CandidateCounts()
    weights: dict[str, float] = Field(
        default_factory=lambda: {RETRIEVAL: 1.0, CONTENT: 1.0, ITEMCF: 1.0, POPULAR: 0.25}
    )
    rules: RulesSettings = RulesSettings()
    timeouts: StageTimeouts = StageTimeouts()
    monitoring: MonitoringSettings = MonitoringSettings()
    impressions: ImpressionSettings = ImpressionSettings()

    @model_validator(mode="after")
    def _known_sources(self) -> ControllerConfig:
        unknown = set(self.weights) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown sources in weights: {sorted(unknown)}; known: {SOURCES}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("source weights must be >= 0")
        return self


class RetrievalSettings(_Strict):
    """The Retrieval deployment's `user_config`.

    Attributes:
        max_n: Upper bound of the movies one request may ask for (clipped to the exported K).
        model_version: Rollout label of the model; changing it makes every replica reload
            the model from the artifacts tree (in the background, swapped in once warm).
        itemcf_history: Which history the item-to-item source scores for a user the build
            knows: "online" (the online store's seen set, so posted ratings and watches count
            at once; one Feast read per call; the training row if the read fails) or
            "training" (their training row, no read). Users the build does not know always
            use the online history.
        faults: Injected faults (tests and drills; see `deployments.faults`).
    """

    max_n: int = Field(default=500, ge=1, le=100_000)
    model_version: str = Field(default="", max_length=200)
    itemcf_history: Literal["online", "training"] = "online"
    faults: FaultSettings = FaultSettings()


class ContentSettings(_Strict):
    """The Content deployment's `user_config`.

    Attributes:
        n_seeds: The user's top-liked movies used as seeds.
        aggregation: How seed similarities combine: "sum" (one KNN on the seeds' centroid,
            cheapest) or "max" (one KNN per seed).
        ef_runtime: HNSW EF_RUNTIME per query; None keeps the index default.
        max_k: Upper bound of the neighbours one request may ask for.
        faults: Injected faults (tests and drills; see `deployments.faults`).
    """

    n_seeds: int = Field(default=10, ge=1, le=100)
    aggregation: Literal["sum", "max"] = "sum"
    ef_runtime: int | None = Field(default=None, ge=1, le=10_000)
    max_k: int = Field(default=500, ge=1, le=10_000)
    faults: FaultSettings = FaultSettings()


class FeaturesSettings(_Strict):
    """The Features deployment's `user_config`.

    Attributes:
        faults: Injected faults (tests and drills; see `deployments.faults`).
    """

    faults: FaultSettings = FaultSettings()


class RankingSettings(_Strict):
    """The Ranking deployment's `user_config` (dynamic batching, the movie feature cache).

    Attributes:
        max_batch_size: At most this many requests share one model call.
        batch_wait_timeout_s: How long a batch waits to fill up; it adds to single-request
            latency, so keep it at a few milliseconds.
        model_version: Rollout label of the ranker; changing it makes every replica reload
            the ranker from the artifacts tree (in the background, swapped in once warm).
        movie_cache: The near cache of the candidates' movie features.
        faults: Injected faults (tests and drills; see `deployments.faults`; methods `rank`
            and `movie_features`, the online store read of the cache's misses).
    """

    max_batch_size: int = Field(default=16, ge=1, le=1024)
    batch_wait_timeout_s: float = Field(default=0.001, ge=0.0, le=1.0)
    model_version: str = Field(default="", max_length=200)
    movie_cache: MovieCacheSettings = MovieCacheSettings()
    faults: FaultSettings = FaultSettings()
