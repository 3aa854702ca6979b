"""The features runtime: online feature reads, one long-lived FeatureStore per process.

The one reader of the online store for serving (the Features stage reads users through
`user_profile`, the Content stage a user's history through `user_history_async`, the
Ranking stage candidates through `get_movie_features_async`) and for benchmarks.

Every read goes through Feast's `get_online_features(_async)` (entity key serialization,
registry lookups, the Redis store's pipelined HMGETs, null handling): no Redis key is read
directly. What this class saves per call (see `models.features.bench` for the numbers):

- the FeatureStore, its registry and its Redis client are built once per process;
- feature refs are resolved once from the feature services, not per call;
- entity rows go in columnar ({"movie_id": [...]}) instead of one dict per row;
- values are read straight from the response proto instead of `OnlineResponse.to_dict()`
  (which runs Feast's generic per-value type conversion); the result is the same mapping;
- candidate movies are read through `ranker_movie_v1`, a feature service with Feast's
  `precompute_online` vectors: one Redis read per movie instead of one per feature view.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from feast import FeatureService, FeatureStore
from feast.errors import FeatureServiceNotFoundException
from feast.infra.registry.base_registry import BaseRegistry
from feast.online_response import OnlineResponse

from models.features.store import (
    CONTROLLER_SERVICE,
    DEFAULT_PROJECT,
    RANKER_MOVIE_SERVICE,
    RANKER_SERVICE,
    feature_refs,
    open_store,
)
from movierec.payloads import UserProfile
from movierec.stages import IMPRESSED_AT, IMPRESSED_MOVIE_IDS, LIKED_MOVIE_IDS, SEEN_MOVIE_IDS

logger = logging.getLogger(__name__)

# A file registry is only re-read when its mtime changes (Feast's "sync" cache mode checks it
# per access); 0 = no time-based re-read on top of that.
READER_OVERRIDES: Mapping[str, Any] = {"registry": {"cache_ttl_seconds": 0}}


def response_columns(response: OnlineResponse, skip: Sequence[str] = ()) -> dict[str, list[Any]]:
    """Feature name -> values (None where missing), read straight from the response proto.

    Same values as `response.to_dict()` for the scalar and list types movierec uses (lists
    come back as Python lists), without its per-value generic conversion.
    """
    proto = response.proto
    out: dict[str, list[Any]] = {}
    for name, vector in zip(proto.metadata.feature_names.val, proto.results, strict=True):
        if name in skip:
            continue
        column: list[Any] = []
        append = column.append
        for value in vector.values:
            kind = value.WhichOneof("val")
            if kind is None or kind == "null_val":
                append(None)
            elif kind.endswith("_list_val") or kind.endswith("_set_val"):
                append(list(getattr(value, kind).val))
            else:
                append(getattr(value, kind))
        out[name] = column
    return out


class OnlineFeatures:
    """Reads the ranker's and the controller's features from the online store.

    `OnlineFeatures.shared(redis_url, registry_path)` returns this process's instance.
    Movie batches go through the precomputed `ranker_movie_v1` service when the registry has
    it (one Redis read per movie); a batch holding a movie with no precomputed vector (an id
    the store does not know) is re-read per view, where unknown movies come back as None.
    """

    _shared: ClassVar[dict[tuple[str, str, str], OnlineFeatures]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()
    _registries: ClassVar[dict[tuple[str, str], BaseRegistry]] = {}
    _registries_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        store: FeatureStore,
        *,
        ranker_service: str = RANKER_SERVICE,
        movie_service: str | None = RANKER_MOVIE_SERVICE,
        controller_service: str = CONTROLLER_SERVICE,
    ) -> None:
        self.store = store
        keys_of = {view.name: tuple(view.join_keys) for view in store.list_feature_views()}
        ranker = feature_refs(store, ranker_service)
        self.user_refs = [r for r in ranker if keys_of[r.split(":", 1)[0]] == ("user_id",)]
        self.movie_refs = [r for r in ranker if keys_of[r.split(":", 1)[0]] == ("movie_id",)]
        self.history_refs = feature_refs(store, controller_service)
        self.seed_refs = [
            r for r in self.history_refs if r.split(":", 1)[1] in (LIKED_MOVIE_IDS, SEEN_MOVIE_IDS)
        ]
        """The liked and seen lists alone: what the content and retrieval sources read."""
        self.user_names = [ref.split(":", 1)[1] for ref in self.user_refs]
        if len(self.user_refs) + len(self.movie_refs) != len(ranker):
            raise ValueError(f"{ranker_service} has views keyed by neither user nor movie")
        self.movie_names = [ref.split(":", 1)[1] for ref in self.movie_refs]
        self._movie_service: FeatureService | None = None
        if movie_service is not None:
            try:
                service = store.get_feature_service(movie_service)
            except FeatureServiceNotFoundException:
                logger.warning("no feature service %s: movies are read per view", movie_service)
            else:
                if sorted(feature_refs(store, movie_service)) != sorted(self.movie_refs):
                    raise ValueError(f"{movie_service} must hold exactly {ranker_service}'s movies")
                if service.precompute_online:
                    self._movie_service = service

    @classmethod
    def open(
        cls,
        redis_url: str,
        registry_path: Path | str,
        project: str = DEFAULT_PROJECT,
        **kwargs: Any,
    ) -> OnlineFeatures:
        """A new reader on the registry at `registry_path` and the Redis at `redis_url`.

        Readers of one registry file and project in a process share Feast's registry
        object (`_share_registry`); each keeps its own online store and Redis clients.
        """
        store = open_store(
            redis_url, registry_path=registry_path, project=project, overrides=READER_OVERRIDES
        )
        cls._share_registry(store, registry_path, project)
        return cls(store, **kwargs)

    @classmethod
    def _share_registry(cls, store: FeatureStore, registry_path: Path | str, project: str) -> None:
        """Gives `store` this process's registry object for the file and project.

        Feast caches each read's resolved request (views, entity maps) in ONE process-wide
        cache, cleared whenever the registry it is asked through differs in its load time
        from the previous call's. Several stores in one process (the single-process
        baseline, the floor benchmark: the Features, Content, Retrieval and Ranking
        stages' readers) would clear it on every alternation and resolve every read
        again. A registry is a read-only, file-backed cache (re-read when the file's mtime
        changes), holding no connection or event loop, so sharing it is safe where sharing
        a whole store (its async Redis client) is not.
        """
        key = (str(Path(registry_path).absolute()), project)
        with cls._registries_lock:  # not `_shared_lock`: `shared` holds it around `open`
            registry = cls._registries.get(key)
            if registry is None:
                cls._registries[key] = store.registry
            else:
                store._registry = registry

    @classmethod
    def shared(
        cls, redis_url: str, registry_path: Path | str, project: str = DEFAULT_PROJECT
    ) -> OnlineFeatures:
        """The process-wide reader for this Redis, registry and project (made on first use)."""
        key = (redis_url, str(Path(registry_path).absolute()), project)
        with cls._shared_lock:
            reader = cls._shared.get(key)
            if reader is None:
                reader = cls._shared[key] = cls.open(redis_url, registry_path, project)
            return reader

    # --- reads -------------------------------------------------------------------------------

    def get_user_features(self, user_id: int) -> dict[str, Any]:
        """The ranker's user features (user_features + user_demographics); None = unknown."""
        response = self.store.get_online_features(self.user_refs, {"user_id": [int(user_id)]})
        return {k: v[0] for k, v in response_columns(response, skip=("user_id",)).items()}

    def get_movie_features(self, movie_ids: Sequence[int]) -> dict[str, list[Any]]:
        """The ranker's movie features, columnar and aligned with `movie_ids` (None = unknown)."""
        ids = [int(i) for i in movie_ids]
        if not ids:
            return {name: [] for name in self.movie_names}
        if self._movie_service is not None:
            try:
                response = self.store.get_online_features(
                    self._movie_service, {"movie_id": ids}, full_feature_names=True
                )
            except RuntimeError:  # a movie without a precomputed vector
                logger.debug("precomputed read failed; reading per view", exc_info=True)
            else:
                return self._from_precomputed(response)
        response = self.store.get_online_features(self.movie_refs, {"movie_id": ids})
        return self._ordered(response_columns(response, skip=("movie_id",)))

    def get_user_history(self, user_id: int) -> dict[str, list[int]]:
        """liked_movie_ids (content seeds) and seen_movie_ids; empty lists for an unknown user."""
        response = self.store.get_online_features(self.history_refs, {"user_id": [int(user_id)]})
        row = response_columns(response, skip=("user_id",))
        return {k: list(row[k][0] or []) for k in (LIKED_MOVIE_IDS, SEEN_MOVIE_IDS) if k in row}

    async def get_user_features_async(self, user_id: int) -> dict[str, Any]:
        """`get_user_features` on Feast's async path (redis.asyncio)."""
        response = await self.store.get_online_features_async(
            self.user_refs, {"user_id": [int(user_id)]}
        )
        return {k: v[0] for k, v in response_columns(response, skip=("user_id",)).items()}

    async def get_movie_features_async(self, movie_ids: Sequence[int]) -> dict[str, list[Any]]:
        """`get_movie_features` on Feast's async path (redis.asyncio)."""
        ids = [int(i) for i in movie_ids]
        if not ids:
            return {name: [] for name in self.movie_names}
        if self._movie_service is not None:
            try:
                response = await self.store.get_online_features_async(
                    self._movie_service, {"movie_id": ids}, full_feature_names=True
                )
            except RuntimeError:
                logger.debug("precomputed read failed; reading per view", exc_info=True)
            else:
                return self._from_precomputed(response)
        response = await self.store.get_online_features_async(self.movie_refs, {"movie_id": ids})
        return self._ordered(response_columns(response, skip=("movie_id",)))

    async def user_history_async(self, user_id: int) -> tuple[tuple[int, ...], frozenset[int]]:
        """The user's (liked, seen) movies on Feast's async path: liked best rated first (the
        content seeds), seen every rated movie; both empty for an unknown user."""
        response = await self.store.get_online_features_async(
            self.seed_refs, {"user_id": [int(user_id)]}
        )
        row = {k: v[0] for k, v in response_columns(response, skip=("user_id",)).items()}
        return _history(row)

    async def user_profile(self, user_id: int) -> UserProfile | None:
        """The user's ranker features and history in ONE Feast read (both keyed by user_id).

        Returns:
            The profile (feature values None where missing); None for a user the store has
            no row for at all (cold start).
        """
        response = await self.store.get_online_features_async(
            [*self.user_refs, *self.history_refs], {"user_id": [int(user_id)]}
        )
        row = {k: v[0] for k, v in response_columns(response, skip=("user_id",)).items()}
        if all(value is None or value == [] for value in row.values()):
            return None
        liked, seen = _history(row)
        features = {name: row.get(name) for name in self.user_names}
        shown = zip(row.get(IMPRESSED_MOVIE_IDS) or (), row.get(IMPRESSED_AT) or (), strict=False)
        impressions = tuple((int(m), int(t)) for m, t in shown)
        return UserProfile(int(user_id), features, liked, seen, impressions)

    def _from_precomputed(self, response: OnlineResponse) -> dict[str, list[Any]]:
        # Feast 0.67 serves precomputed vectors under full names ("view__feature") only.
        columns = response_columns(response, skip=("movie_id",))
        return self._ordered({k.split("__", 1)[-1]: v for k, v in columns.items()})

    def _ordered(self, columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {name: columns[name] for name in self.movie_names}


def _history(row: Mapping[str, Any]) -> tuple[tuple[int, ...], frozenset[int]]:
    """(liked, seen) from a row holding the history features (missing = empty)."""
    liked = tuple(int(i) for i in row.get(LIKED_MOVIE_IDS) or ())
    seen = frozenset(int(i) for i in row.get(SEEN_MOVIE_IDS) or ())
    return liked, seen
