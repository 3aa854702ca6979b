"""The retrieval runtime: the exported two-tower SavedModel plus the users' side features.

One runtime for everything that queries the exported model: the Retrieval deployment
(`deployments.retrieval`), the offline evaluation (`models.evaluation.report`) and the
benchmarks. Only TensorFlow is imported (TFRS is not needed to serve: the SavedModel is
self-contained).

* `Retriever`: the SavedModel of `retrieval/` (`export_retrieval`): user inputs in, top-K
  movie ids and scores out.
* `UserSideFeatures`: user id -> the side features the user tower was trained with (age,
  gender, occupation, zip code), held in memory, so a query needs only the user id.
* `RetrievalRuntime`: both, loaded from an artifacts tree (`RetrievalRuntime.load`): B user
  ids in, their top-k out, in one TensorFlow call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.retrieval.liked import MOVIE_EMBEDDINGS_FILE, LikedMoviesQuery
from models.tensorflow_env import configure_threads, tf
from movierec.layout import ArtifactLayout
from movierec.payloads import ScoredMovies

if TYPE_CHECKING:
    from models.itemcf.runtime import ItemCFRuntime

SAVED_MODEL_DIR = "saved_model"
METADATA_FILE = "metadata.json"
USERS_FILE = "users.parquet"
"""Optional `retrieval/users.parquet` (user_id, age, gender, occupation, zip_code): the side
features the model was trained with. Preferred over the Feast demographics source."""

_DEMOGRAPHICS_FILE = "user_demographics.parquet"
_FEATURE_COLUMNS = ("age", "gender", "occupation", "zip_code")
_DEFAULTS: dict[str, Any] = {"age": 0, "gender": "", "occupation": "", "zip_code": ""}


def _plain(value: Any) -> Any:
    """None for missing values (None, NaN, pd.NA); integral floats (ages read from a nullable
    column) as int."""
    if value is None or (np.ndim(value) == 0 and pd.isna(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class UserSideFeatures:
    """User id -> the retrieval model's side features, held in memory."""

    def __init__(self, frame: pd.DataFrame | None, source: str = "none") -> None:
        """Builds the table from columns user_id and any of age/gender/occupation/zip_code.

        Args:
            frame: One row per user (a later row of the same user wins); None: no users.
            source: Where the table comes from (reported by the Retrieval stage's health).
        """
        self.source = source
        self._rows: dict[int, dict[str, Any]] = {}
        self._columns: tuple[str, ...] = ()
        if frame is None or frame.empty:
            return
        self._columns = tuple(c for c in _FEATURE_COLUMNS if c in frame.columns)
        records = frame[["user_id", *self._columns]].to_dict("records")
        for record in records:
            user_id = int(record.pop("user_id"))
            self._rows[user_id] = {str(k): _plain(v) for k, v in record.items()}

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._rows

    def features(self, user_id: int) -> dict[str, list[Any]]:
        """Signature side features of one user ({} when unknown: the model's defaults)."""
        row = self._rows.get(user_id)
        return {} if row is None else {k: [v] for k, v in row.items()}

    def batch(self, user_ids: Sequence[int]) -> dict[str, list[Any]]:
        """Side features of B users: name -> [B] values (None for an unknown user or value,
        i.e. the model's default)."""
        empty: dict[str, Any] = {}
        rows = [self._rows.get(int(u), empty) for u in user_ids]
        return {name: [row.get(name) for row in rows] for name in self._columns}

    @classmethod
    def load(cls, retrieval_dir: Path, features_dir: Path) -> UserSideFeatures:
        """Reads `retrieval/users.parquet`, else the Feast demographics source, else nothing."""
        own = retrieval_dir / USERS_FILE
        if own.exists():
            return cls(pd.read_parquet(own), str(own))
        demographics = features_dir / _DEMOGRAPHICS_FILE
        if demographics.exists():
            frame = pd.read_parquet(demographics)
            if "event_timestamp" in frame.columns:
                frame = frame.sort_values("event_timestamp").drop_duplicates("user_id", keep="last")
            frame = frame.rename(columns=lambda c: c.removeprefix("user_") if c != "user_id" else c)
            return cls(frame, str(demographics))
        return cls(None)


class Retriever:
    """A loaded retrieval model: user inputs in, top-K movie ids and scores out."""

    def __init__(self, export_dir: str | Path) -> None:
        """Loads `export_dir` (written by `export_retrieval`).

        Args:
            export_dir: Directory holding `saved_model/` and `metadata.json`.
        """
        export_dir = Path(export_dir)
        self.metadata: dict[str, Any] = json.loads((export_dir / METADATA_FILE).read_text())
        self.k: int = int(self.metadata["k"])
        self.feature_names: tuple[str, ...] = tuple(self.metadata["user_features"])
        self._loaded = tf.saved_model.load(str(export_dir / SAVED_MODEL_DIR))
        self._recommend = self._loaded.signatures["serving_default"]
        # Absent from exports written before the signature existed: `recommend` then drops the
        # excluded movies from the top K on the client side instead.
        self._recommend_excluding = self._loaded.signatures.get("recommend_excluding")
        self._user_embedding = self._loaded.signatures["user_embedding"]
        self._movie_embedding = self._loaded.signatures["movie_embedding"]

    def inputs(
        self, user_ids: Sequence[int] | np.ndarray, features: Mapping[str, Any] | None = None
    ) -> dict[str, tf.Tensor]:
        """Builds the signature inputs for B users.

        Args:
            user_ids: [B] user ids; unknown ids are fine (OOV bucket).
            features: Optional side features, each a [B] sequence (age int, gender,
                occupation, zip_code str). Missing features (or None entries) get the
                "unknown" value; features the model does not use are ignored.

        Returns:
            {"user_id": [B] int64, one [B] tensor per model feature}.
        """
        ids = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        features = features or {}
        out = {"user_id": tf.constant(ids)}
        for name in self.feature_names:
            default = _DEFAULTS[name]
            values = features.get(name)
            if values is None:
                column = [default] * len(ids)
            else:
                column = [default if v is None else v for v in np.asarray(values).reshape(-1)]
                if len(column) != len(ids):
                    raise ValueError(
                        f"feature {name!r} has {len(column)} rows, expected {len(ids)}"
                    )
            dtype = tf.int64 if isinstance(default, int) else tf.string
            out[name] = tf.constant(column, dtype=dtype)
        return out

    def recommend(
        self,
        user_ids: Sequence[int] | np.ndarray,
        features: Mapping[str, Any] | None = None,
        k: int | None = None,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Returns the top-k movies of each user by score.

        Args:
            user_ids: [B] user ids.
            features: Side features, see `inputs`.
            k: How many to return (<= the exported K); defaults to K.
            exclude: Optional per-user movie ids to leave out (e.g. already rated), removed
                inside the model before the top-K cut (exports older than the
                `recommend_excluding` signature: removed from the top K here instead). Rows
                left with fewer than k movies are padded with id -1 and score -inf.

        Returns:
            (movie_ids [B, k] int64, scores [B, k] float32), best first.
        """
        k = self.k if k is None else k
        if not 0 < k <= self.k:
            raise ValueError(f"k must be in 1..{self.k}, got {k}")
        inputs = self.inputs(user_ids, features)
        if exclude is None:
            out = self._recommend(**inputs)
            return out["movie_ids"].numpy()[:, :k], out["scores"].numpy()[:, :k]
        if len(exclude) != len(inputs["user_id"]):
            raise ValueError("exclude needs one list per user")
        width = max(1, max((len(row) for row in exclude), default=1))
        padded = np.full((len(exclude), width), -1, dtype=np.int64)
        for i, row in enumerate(exclude):
            padded[i, : len(row)] = np.asarray(list(row), dtype=np.int64)
        if self._recommend_excluding is None:
            out = self._recommend(**inputs)
            ids, scores = out["movie_ids"].numpy(), out["scores"].numpy()
            keep = np.array([~np.isin(ids[i], padded[i]) for i in range(len(ids))])
            scores = np.where(keep, scores, -np.inf).astype(np.float32)
            order = np.argsort(-scores, axis=1, kind="stable")
            ids = np.take_along_axis(ids, order, axis=1)
            scores = np.take_along_axis(scores, order, axis=1)
        else:
            out = self._recommend_excluding(**inputs, exclude_movie_ids=tf.constant(padded))
            ids, scores = out["movie_ids"].numpy(), out["scores"].numpy()
        ids, scores = ids[:, :k], scores[:, :k]
        return np.where(np.isfinite(scores), ids, -1), scores

    def user_embeddings(
        self, user_ids: Sequence[int] | np.ndarray, features: Mapping[str, Any] | None = None
    ) -> np.ndarray:
        """Returns the [B, D] float32 query embeddings of the users."""
        return self._user_embedding(**self.inputs(user_ids, features))["embedding"].numpy()

    def movie_embeddings(self, movies: Mapping[str, Any]) -> np.ndarray:
        """Embeds movies with the movie tower (e.g. movies added after training).

        Args:
            movies: `movie_id` [B] int; when the model uses movie features also `title` [B]
                str, `genres` [B, G] str padded with "", `year` [B] int (0 unknown).

        Returns:
            [B, D] float32 candidate embeddings (dot them with `user_embeddings`).
        """
        inputs = {"movie_id": tf.constant(np.asarray(movies["movie_id"], dtype=np.int64))}
        if self.metadata.get("movie_features"):
            inputs["title"] = tf.constant(np.asarray(movies["title"], dtype=object), tf.string)
            inputs["genres"] = tf.constant(np.asarray(movies["genres"], dtype=object), tf.string)
            inputs["year"] = tf.constant(np.asarray(movies["year"], dtype=np.int64))
        return self._movie_embedding(**inputs)["embedding"].numpy()


def load_retriever(
    export_dir: str | Path, intra_op_threads: int = 1, inter_op_threads: int = 1
) -> Retriever:
    """Configures TensorFlow's thread pools, then loads an exported retrieval model.

    Args:
        export_dir: Directory written by `export_retrieval`.
        intra_op_threads: TensorFlow intra-op threads; 1 is fastest for single-user queries
            and leaves the other cores to the rest of the serving process.
        inter_op_threads: TensorFlow inter-op threads.

    Returns:
        The loaded `Retriever`.
    """
    configure_threads(intra_op_threads, inter_op_threads)
    return Retriever(export_dir)


class RetrievalRuntime:
    """The served retrieval model: user ids in, their top-k movies out.

    Also serves the item-to-item source (`models.itemcf.runtime.ItemCFRuntime`) of the same
    artifacts tree when it has one: both are collaborative models of the training
    interactions, loaded and reloaded together.

    Attributes:
        retriever: The SavedModel.
        users: The side features fed with each user id.
        itemcf: The item-to-item source (None: the tree has none).
    """

    def __init__(
        self,
        retriever: Retriever,
        users: UserSideFeatures,
        itemcf: ItemCFRuntime | None = None,
        liked: LikedMoviesQuery | None = None,
    ) -> None:
        self.retriever = retriever
        self.users = users
        self.itemcf = itemcf
        self.liked = liked
        """Retrieval from liked movies, for users the model does not know (None: no
        `movie_embeddings.parquet` in the export)."""

    @classmethod
    def load(
        cls, layout: ArtifactLayout, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> RetrievalRuntime:
        """Loads `retrieval/` of an artifacts tree and its users' side features, then warms
        the model up with one query.

        Args:
            layout: The artifacts tree (`retrieval/`, and `features/` for the Feast
                demographics when the export has no `users.parquet`).
            intra_op_threads: TensorFlow intra-op threads (see `load_retriever`).
            inter_op_threads: TensorFlow inter-op threads.
        """
        from models.itemcf.runtime import METADATA_FILE as ITEMCF_META
        from models.itemcf.runtime import ItemCFRuntime

        retriever = load_retriever(layout.retrieval_dir, intra_op_threads, inter_op_threads)
        itemcf = (
            ItemCFRuntime.load(layout.itemcf_dir)
            if (layout.itemcf_dir / ITEMCF_META).exists()
            else None
        )
        users = UserSideFeatures.load(layout.retrieval_dir, layout.features_dir)
        embeddings = layout.retrieval_dir / MOVIE_EMBEDDINGS_FILE
        liked = LikedMoviesQuery.load(layout.retrieval_dir) if embeddings.exists() else None
        runtime = cls(retriever, users, itemcf, liked)
        runtime.top_k([0], 1)  # warm-up: the first call traces the signature
        return runtime

    @property
    def k(self) -> int:
        """The exported K: the most movies one query returns."""
        return self.retriever.k

    def top_k(self, user_ids: Sequence[int], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The top-k movies of B users by model score, in one model call.

        Args:
            user_ids: [B] user ids (unknown ones are answered from the OOV bucket and the
                default side features).
            k: Movies per user, 1..`self.k`.

        Returns:
            (movie_ids [B, k] int64, scores [B, k] float32), best first (seen movies
            included).
        """
        ids = [int(u) for u in user_ids]
        movie_ids, scores = self.retriever.recommend(ids, self.users.batch(ids), k=k)
        return movie_ids.astype(np.int64, copy=False), scores.astype(np.float32, copy=False)

    def candidates(self, user_id: int, n: int) -> ScoredMovies:
        """One user's top-`n` movies (`n` clipped to the exported K; none for n <= 0)."""
        if n <= 0:
            return ScoredMovies.empty()
        ids, scores = self.top_k([user_id], min(int(n), self.k))
        return ScoredMovies(ids[0], scores[0])

    def related(self, user_id: int, n: int) -> ScoredMovies:
        """One user's top-`n` unseen movies of the item-to-item source (none for n <= 0,
        a user it does not know, or a tree without the source)."""
        if n <= 0 or self.itemcf is None:
            return ScoredMovies.empty()
        return self.itemcf.candidates(user_id, int(n))


def measure_latency(
    retriever: Retriever,
    user_ids: Sequence[int],
    features: Mapping[str, Sequence[Any]] | None = None,
    repeats: int = 1000,
    warmup: int = 50,
) -> dict[str, float]:
    """Times single-user `recommend` calls (input conversion included), cycling over users.

    Args:
        retriever: A loaded retriever.
        user_ids: Users to cycle through.
        features: Optional per-user side features aligned with `user_ids`.
        repeats: Timed calls.
        warmup: Untimed calls first.

    Returns:
        {"p50_ms", "p90_ms", "p99_ms", "mean_ms", "calls"}.
    """

    def call(i: int) -> None:
        j = i % len(user_ids)
        row = None if features is None else {n: [v[j]] for n, v in features.items()}
        retriever.recommend([user_ids[j]], row)

    for i in range(warmup):
        call(i)
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times[i] = time.perf_counter() - start
    times *= 1000.0
    return {
        "p50_ms": float(np.percentile(times, 50)),
        "p90_ms": float(np.percentile(times, 90)),
        "p99_ms": float(np.percentile(times, 99)),
        "mean_ms": float(times.mean()),
        "calls": float(repeats),
    }
