"""Point-in-time feature snapshots computed from the normalized MovieLens tables.

The offline store holds SNAPSHOTS taken at a regular cadence over the ratings' time range.
A snapshot at time `t` uses only the ratings with `timestamp < t` (strictly) and its rows are
stamped `event_timestamp = t`, so Feast's point-in-time join (feature row time <= example time)
can never hand a model a rating at or after the example it is scoring. The last snapshot is
taken one second after the newest input rating, so it covers all of them: it is the state the
online store serves after materialization.

Which ratings go in is the caller's decision: the pipeline passes the TRAINING split when it
builds evaluation artifacts (nothing from the test split can leak) and all ratings in `--full`
mode.

Tables (one pyarrow table each, written as the Feast FileSources; dtypes in `SCHEMAS`):

movie_features    one row per (snapshot, movie with >= 1 rating before it): counts, mean,
                  recent count, popularity percentile. The last snapshot also lists every
                  catalog movie with no rating at all (count 0), so serving knows them.
movie_metadata    one row per movie (genres, multi-hot, year), stamped at the movie's first
                  input rating (when it demonstrably exists), or at the last snapshot for
                  catalog movies nobody rated. Kept apart from the per-snapshot rows so list
                  columns are not repeated (and re-pickled by Feast's dask store) per snapshot.
user_features     one row per (snapshot, user) where the user rated something since the
                  previous snapshot: the values of a user who did not rate are unchanged, and
                  the point-in-time join carries the older row forward (long TTL).
user_history      same rows as user_features: liked movie ids (content seeds) and seen movie ids.
user_demographics one row per user of the users table (empty for variants without one),
                  stamped at the user's first input rating (the profile exists from sign-up),
                  or at the last snapshot for users with no input rating.

Everything is vectorized numpy over the ratings (no per-user Python loop); the only loop is
over snapshots for the popularity percentile.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.features.genres import GENRE_INDEX, GENRES, canonical_genres

EVENT_TIMESTAMP = "event_timestamp"
_TS_TYPE = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "movie_metadata": pa.schema(
        [
            ("movie_id", pa.int64()),
            (EVENT_TIMESTAMP, _TS_TYPE),
            ("movie_genres", pa.list_(pa.string())),
            ("movie_genre_vector", pa.list_(pa.float32())),
            ("movie_year", pa.int64()),
        ]
    ),
    "movie_features": pa.schema(
        [
            ("movie_id", pa.int64()),
            (EVENT_TIMESTAMP, _TS_TYPE),
            ("movie_rating_count", pa.int64()),
            ("movie_rating_mean", pa.float32()),
            ("movie_recent_rating_count", pa.int64()),
            ("movie_popularity_pct", pa.float32()),
        ]
    ),
    "user_features": pa.schema(
        [
            ("user_id", pa.int64()),
            (EVENT_TIMESTAMP, _TS_TYPE),
            ("user_rating_count", pa.int64()),
            ("user_rating_mean", pa.float32()),
            ("user_genre_affinity", pa.list_(pa.float32())),
        ]
    ),
    "user_demographics": pa.schema(
        [
            ("user_id", pa.int64()),
            (EVENT_TIMESTAMP, _TS_TYPE),
            ("user_age", pa.int64()),
            ("user_gender", pa.string()),
            ("user_occupation", pa.string()),
        ]
    ),
    "user_history": pa.schema(
        [
            ("user_id", pa.int64()),
            (EVENT_TIMESTAMP, _TS_TYPE),
            ("liked_movie_ids", pa.list_(pa.int64())),
            ("seen_movie_ids", pa.list_(pa.int64())),
            # event-driven (the Events applier writes them online); empty in snapshots
            ("impressed_movie_ids", pa.list_(pa.int64())),
            ("impressed_at", pa.list_(pa.int64())),
        ]
    ),
}

TABLE_NAMES: tuple[str, ...] = tuple(SCHEMAS)


@dataclass(frozen=True)
class SnapshotConfig:
    """How snapshots are taken. The defaults suit every MovieLens variant."""

    cadence: timedelta = timedelta(days=7)
    """Snapshot spacing; snapshots sit on multiples of it since the epoch (UTC)."""
    max_snapshots: int = 200
    """Upper bound on the number of snapshots: long ranges (ml-25m spans 24 years) get a
    coarser cadence (whole days), which bounds the dense movie table at ~200 x movies rows."""
    recent_window: timedelta = timedelta(days=30)
    """`movie_recent_rating_count` counts ratings in [t - recent_window, t)."""
    like_threshold: float = 4.0
    """A rating >= this is a "like" (a content seed candidate)."""
    top_liked_k: int = 50
    """Length cap of `liked_movie_ids`."""

    def __post_init__(self) -> None:
        if self.cadence.total_seconds() < 1:
            raise ValueError("cadence must be at least one second")
        if self.max_snapshots < 2:
            raise ValueError("max_snapshots must be >= 2")
        if self.recent_window.total_seconds() < 1:
            raise ValueError("recent_window must be at least one second")
        if self.top_liked_k < 1:
            raise ValueError("top_liked_k must be >= 1")


@dataclass(frozen=True)
class FeatureTables:
    """The offline-store tables plus the snapshot times (seconds since the epoch)."""

    movie_metadata: pa.Table
    movie_features: pa.Table
    user_features: pa.Table
    user_demographics: pa.Table
    user_history: pa.Table
    snapshot_times: np.ndarray

    def tables(self) -> dict[str, pa.Table]:
        """Returns the tables by FileSource name (the keys of `SCHEMAS`)."""
        return {name: getattr(self, name) for name in TABLE_NAMES}

    def time_range(self) -> tuple[datetime, datetime]:
        """(earliest, latest) event_timestamp over all tables: what to materialize."""
        lows, highs = [], []
        for table in self.tables().values():
            if table.num_rows:
                ts = table.column(EVENT_TIMESTAMP).cast(pa.int64())
                lows.append(pc.min(ts).as_py())
                highs.append(pc.max(ts).as_py())
        return (
            datetime.fromtimestamp(min(lows) / 1e6, tz=UTC),
            datetime.fromtimestamp(max(highs) / 1e6, tz=UTC),
        )

    @property
    def first_snapshot(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.snapshot_times[0]), unit="s", tz="UTC")

    @property
    def last_snapshot(self) -> pd.Timestamp:
        return pd.Timestamp(int(self.snapshot_times[-1]), unit="s", tz="UTC")


def snapshot_times(timestamps: Iterable[int] | np.ndarray, config: SnapshotConfig) -> np.ndarray:
    """Returns the snapshot times (int64 seconds, ascending) for ratings at `timestamps`.

    The end of every cadence period in (min, max] that holds a rating, and finally max + 1,
    so that the last snapshot covers every rating and the first one has at least one rating
    before it. Periods without a rating get no snapshot (nothing changed in them): a full
    build's feedback events, decades after MovieLens's ratings, add a few snapshots rather
    than coarsening the whole range. More than `max_snapshots` coarsens the cadence.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    if ts.size == 0:
        raise ValueError("cannot take snapshots of an empty ratings table")
    hi = int(ts.max())
    step = int(config.cadence.total_seconds())
    while True:
        ends = (np.unique(ts // step) + 1) * step
        regular = ends[ends <= hi]
        if len(regular) <= config.max_snapshots - 1:
            return np.append(regular, np.int64(hi + 1))
        days = math.ceil(step * len(regular) / (config.max_snapshots - 1) / 86400)
        step = max(step + 86400, days * 86400)


def build_feature_tables(
    ratings: pd.DataFrame,
    movies: pd.DataFrame,
    users: pd.DataFrame | None = None,
    config: SnapshotConfig | None = None,
) -> FeatureTables:
    """Computes the snapshot tables from the normalized tables (see `models.data.schema`)."""
    config = config or SnapshotConfig()
    missing = {"user_id", "movie_id", "rating", "timestamp"} - set(ratings.columns)
    if missing:
        raise ValueError(f"ratings lacks columns {sorted(missing)}")
    uid = ratings["user_id"].to_numpy(dtype=np.int64)
    mid = ratings["movie_id"].to_numpy(dtype=np.int64)
    rating = ratings["rating"].to_numpy(dtype=np.float64)
    ts = ratings["timestamp"].to_numpy(dtype=np.int64)
    snaps = snapshot_times(ts, config)

    catalog = _catalog(movies, mid)
    movie_table, metadata_table = _movie_features(catalog, mid, rating, ts, snaps, config)
    user_table, history_table = _user_tables(catalog, uid, mid, rating, ts, snaps, config)
    demo_table = _demographics(users, uid, ts, snaps)
    return FeatureTables(
        movie_metadata=metadata_table,
        movie_features=movie_table,
        user_features=user_table,
        user_demographics=demo_table,
        user_history=history_table,
        snapshot_times=snaps,
    )


# --- movies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Catalog:
    movie_ids: np.ndarray  # sorted, unique: the catalog plus any rated id missing from it
    in_catalog: np.ndarray  # bool, per movie_ids
    genres: pa.ListArray  # canonical genre names, per movie_ids
    genre_vector: pa.ListArray  # multi-hot float32 in GENRES order, per movie_ids
    genre_slots: np.ndarray  # flat GENRES indices of every movie's known genres (CSR values)
    genre_offsets: np.ndarray  # CSR offsets into genre_slots, len(movie_ids) + 1
    year: pa.Array  # int64 with nulls, per movie_ids


def _as_genre_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return canonical_genres(value.split("|"))
    if isinstance(value, list | tuple | np.ndarray):
        return canonical_genres(value)
    return []


def _catalog(movies: pd.DataFrame, rated_ids: np.ndarray) -> _Catalog:
    movies = movies.drop_duplicates("movie_id")
    cat_ids = movies["movie_id"].to_numpy(dtype=np.int64)
    ids = np.union1d(cat_ids, rated_ids)
    pos = np.searchsorted(ids, cat_ids)
    in_catalog = np.zeros(len(ids), dtype=bool)
    in_catalog[pos] = True

    genre_lists: list[list[str]] = [[] for _ in range(len(ids))]
    if "genres" in movies.columns:
        for p, value in zip(pos, movies["genres"].tolist(), strict=True):
            genre_lists[p] = _as_genre_list(value)
    years = np.zeros(len(ids), dtype=np.int64)
    year_known = np.zeros(len(ids), dtype=bool)
    if "year" in movies.columns:
        year = pd.to_numeric(movies["year"], errors="coerce")
        known = year.notna().to_numpy()
        years[pos[known]] = year[known].to_numpy(dtype=np.int64)
        year_known[pos[known]] = True

    slots = [[GENRE_INDEX[g] for g in gl if g in GENRE_INDEX] for gl in genre_lists]
    lens = np.fromiter((len(s) for s in slots), dtype=np.int64, count=len(slots))
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    flat_slots = np.fromiter((x for s in slots for x in s), dtype=np.int64, count=int(lens.sum()))
    multi_hot = np.zeros((len(ids), len(GENRES)), dtype=np.float32)
    multi_hot[np.repeat(np.arange(len(ids)), lens), flat_slots] = 1.0
    return _Catalog(
        movie_ids=ids,
        in_catalog=in_catalog,
        genres=pa.array(genre_lists, type=pa.list_(pa.string())),
        genre_vector=_fixed_lists(multi_hot),
        genre_slots=flat_slots,
        genre_offsets=offsets,
        year=pa.array(years, type=pa.int64(), mask=~year_known),
    )


def _movie_features(
    catalog: _Catalog,
    mid: np.ndarray,
    rating: np.ndarray,
    ts: np.ndarray,
    snaps: np.ndarray,
    config: SnapshotConfig,
) -> tuple[pa.Table, pa.Table]:
    n_movies, n_snaps = len(catalog.movie_ids), len(snaps)
    midx = np.searchsorted(catalog.movie_ids, mid)
    window = int(config.recent_window.total_seconds())
    # Composite key (movie index, time relative to `base`) sorts ratings by movie then time, so
    # "ratings of movie m before time t" is one searchsorted for the whole (movie x snapshot) grid.
    base = int(ts.min()) - window - 1
    shift = np.int64(1) << np.int64(40)
    order = np.lexsort((ts, midx))
    keys = midx[order] * shift + (ts[order] - base)
    rating_cumsum = np.concatenate([[0.0], np.cumsum(rating[order])])

    m_grid = np.arange(n_movies, dtype=np.int64)[:, None] * shift
    starts = np.searchsorted(keys, m_grid[:, 0], side="left")[:, None]
    before_t = np.searchsorted(keys, (m_grid + (snaps - base)[None, :]).ravel(), side="left")
    before_t = before_t.reshape(n_movies, n_snaps)
    before_window = np.searchsorted(
        keys, (m_grid + (snaps - window - base)[None, :]).ravel(), side="left"
    ).reshape(n_movies, n_snaps)
    count = before_t - starts
    recent = before_t - before_window
    total = rating_cumsum[before_t] - rating_cumsum[starts]

    pct = np.zeros((n_movies, n_snaps), dtype=np.float64)
    for j in range(n_snaps):
        col = count[:, j]
        rated = int(np.count_nonzero(col))
        if rated:
            sorted_col = np.sort(col)
            at_or_below = np.searchsorted(sorted_col, col, side="right") - (n_movies - rated)
            pct[:, j] = np.where(col > 0, at_or_below / rated, 0.0)

    keep = count > 0
    keep[:, -1] |= catalog.in_catalog
    # Rows ordered by snapshot, then movie.
    snap_idx, movie_idx = np.nonzero(keep.T)
    cnt = count[movie_idx, snap_idx]
    mean = np.divide(
        total[movie_idx, snap_idx], cnt, out=np.zeros(len(cnt), dtype=np.float64), where=cnt > 0
    )
    features = pa.Table.from_arrays(
        [
            pa.array(catalog.movie_ids[movie_idx], type=pa.int64()),
            _timestamps(snaps[snap_idx]),
            pa.array(cnt, type=pa.int64()),
            pa.array(mean.astype(np.float32), type=pa.float32(), mask=cnt == 0),
            pa.array(recent[movie_idx, snap_idx], type=pa.int64()),
            pa.array(pct[movie_idx, snap_idx].astype(np.float32), type=pa.float32()),
        ],
        schema=SCHEMAS["movie_features"],
    )

    # Metadata: one row per movie, from its first rating (the first time it demonstrably
    # exists); catalog movies nobody rated get the last snapshot, like their zero counts.
    first_rating = np.full(n_movies, snaps[-1], dtype=np.int64)
    np.minimum.at(first_rating, midx, ts)
    metadata = pa.Table.from_arrays(
        [
            pa.array(catalog.movie_ids, type=pa.int64()),
            _timestamps(first_rating),
            catalog.genres,
            catalog.genre_vector,
            catalog.year,
        ],
        schema=SCHEMAS["movie_metadata"],
    )
    return features, metadata


# --- users -----------------------------------------------------------------------------------


def _user_tables(
    catalog: _Catalog,
    uid: np.ndarray,
    mid: np.ndarray,
    rating: np.ndarray,
    ts: np.ndarray,
    snaps: np.ndarray,
    config: SnapshotConfig,
) -> tuple[pa.Table, pa.Table]:
    # bucket b: the first snapshot strictly after the rating, i.e. the first that counts it.
    bucket = np.searchsorted(snaps, ts, side="right")
    order = np.lexsort((mid, ts, bucket, uid))
    uid, mid, rating, ts, bucket = uid[order], mid[order], rating[order], ts[order], bucket[order]
    n = len(uid)

    # Groups: one per (user, bucket) with ratings, in (user, bucket) order = the emitted rows.
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (uid[1:] != uid[:-1]) | (bucket[1:] != bucket[:-1])
    group = np.cumsum(new_group) - 1
    group_start = np.flatnonzero(new_group)
    n_groups = len(group_start)
    g_uid = uid[group_start]
    g_bucket = bucket[group_start]
    new_user = np.ones(n_groups, dtype=bool)
    new_user[1:] = g_uid[1:] != g_uid[:-1]
    user_first_group = np.maximum.accumulate(np.where(new_user, np.arange(n_groups), 0))
    user_last_group = _last_of_run(new_user)

    count = _cumsum_within(np.bincount(group, minlength=n_groups), user_first_group)
    total = _cumsum_within(np.bincount(group, weights=rating, minlength=n_groups), user_first_group)
    mean = (total / count).astype(np.float32)

    # Genre counts: every rating contributes 1 to each GENRES slot of its movie.
    midx = np.searchsorted(catalog.movie_ids, mid)
    lens = np.diff(catalog.genre_offsets)[midx]
    slot = catalog.genre_slots[np.repeat(catalog.genre_offsets[midx], lens) + _ranges(lens)]
    n_genres = len(GENRES)
    per_group = np.bincount(
        np.repeat(group, lens) * n_genres + slot, minlength=n_groups * n_genres
    ).reshape(n_groups, n_genres)
    genre_counts = _cumsum_within(per_group, user_first_group).astype(np.float64)
    tag_total = genre_counts.sum(axis=1, keepdims=True)
    affinity = np.divide(
        genre_counts, tag_total, out=np.zeros_like(genre_counts), where=tag_total > 0
    )

    event_ts = _timestamps(snaps[g_bucket])
    user_ids = pa.array(g_uid, type=pa.int64())
    features = pa.Table.from_arrays(
        [
            user_ids,
            event_ts,
            pa.array(count, type=pa.int64()),
            pa.array(mean, type=pa.float32()),
            _fixed_lists(affinity.astype(np.float32)),
        ],
        schema=SCHEMAS["user_features"],
    )

    # History. Ratings are sorted by (user, bucket, time, movie), so the ratings a user made
    # before group g's snapshot are one contiguous slice: seen lists are slices, no sort.
    group_end = np.append(group_start[1:], n)
    seen = _slice_lists(group_start[user_first_group], group_end, mid)
    liked = _top_liked(group, user_first_group, user_last_group, mid, ts, rating, config)
    empty = pa.array([[]] * len(user_ids), type=pa.list_(pa.int64()))
    history = pa.Table.from_arrays(
        [user_ids, event_ts, liked, seen, empty, empty], schema=SCHEMAS["user_history"]
    )
    return features, history


def _demographics(
    users: pd.DataFrame | None, uid: np.ndarray, ts: np.ndarray, snaps: np.ndarray
) -> pa.Table:
    schema = SCHEMAS["user_demographics"]
    if users is None or len(users) == 0:
        return schema.empty_table()
    users = users.drop_duplicates("user_id")
    ids = users["user_id"].to_numpy(dtype=np.int64)
    first = pd.Series(ts).groupby(uid).min()
    stamp = first.reindex(ids).fillna(int(snaps[-1])).to_numpy(dtype=np.int64)
    if "age" in users.columns:
        age = pa.array(pd.to_numeric(users["age"], errors="coerce").astype("Int64"))
    else:
        age = pa.nulls(len(ids), type=pa.int64())
    return pa.Table.from_arrays(
        [
            pa.array(ids, type=pa.int64()),
            _timestamps(stamp),
            age.cast(pa.int64()),
            _string_column(users, "gender"),
            _string_column(users, "occupation"),
        ],
        schema=schema,
    )


# --- helpers ---------------------------------------------------------------------------------


def _timestamps(seconds: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(seconds, dtype=np.int64) * 1_000_000, type=pa.int64()).cast(_TS_TYPE)


def _fixed_lists(matrix: np.ndarray) -> pa.ListArray:
    """A (rows x k) matrix as a list<value> array of rows."""
    rows, k = matrix.shape
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * k, type=pa.int32())
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def _string_column(frame: pd.DataFrame, column: str) -> pa.Array:
    if column not in frame.columns:
        return pa.nulls(len(frame), type=pa.string())
    values = frame[column].astype("string")
    return pa.array(values, type=pa.string(), from_pandas=True)


def _ranges(lens: np.ndarray) -> np.ndarray:
    """concat(arange(l) for l in lens), vectorized."""
    lens = np.asarray(lens, dtype=np.int64)
    total = int(lens.sum())
    return np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)


def _last_of_run(new_run: np.ndarray) -> np.ndarray:
    """For each position, the index of the last position of its run (runs start at True)."""
    n = len(new_run)
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], n) - 1
    return np.repeat(ends, np.diff(np.append(starts, n)))


def _cumsum_within(values: np.ndarray, run_first: np.ndarray) -> np.ndarray:
    """Cumulative sum along axis 0, restarting at each run (run_first[i]: start of i's run)."""
    cs = np.cumsum(values, axis=0)
    before = np.zeros_like(cs)
    has_prev = run_first > 0
    before[has_prev] = cs[run_first[has_prev] - 1]
    return cs - before


_CHUNK = 1 << 24  # list elements built per step: bounds the memory of the history lists


def _chunk_bounds(cost: np.ndarray, limit: int = _CHUNK) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) ranges of positions whose summed cost is <= limit (or 1 position)."""
    cum = np.cumsum(cost)
    bounds: list[tuple[int, int]] = []
    lo = 0
    while lo < len(cost):
        base = int(cum[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(cum, base + limit, side="right")), lo + 1)
        bounds.append((lo, hi))
        lo = hi
    return bounds


def _list_array(sizes: np.ndarray, values: np.ndarray) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, type=pa.int64()))


def _slice_lists(starts: np.ndarray, ends: np.ndarray, values: np.ndarray) -> pa.ChunkedArray:
    """List i = values[starts[i]:ends[i]], built in bounded chunks."""
    lens = ends - starts
    chunks = []
    for lo, hi in _chunk_bounds(lens):
        idx = np.repeat(starts[lo:hi], lens[lo:hi]) + _ranges(lens[lo:hi])
        chunks.append(_list_array(lens[lo:hi], values[idx]))
    return pa.chunked_array(chunks, type=pa.list_(pa.int64()))


def _top_liked(
    group: np.ndarray,
    user_first_group: np.ndarray,
    user_last_group: np.ndarray,
    mid: np.ndarray,
    ts: np.ndarray,
    rating: np.ndarray,
    config: SnapshotConfig,
) -> pa.ChunkedArray:
    """Per group: the user's top_liked_k liked movies among ratings up to that group.

    Order: best rated first, then most recent, then movie id. A liked rating of group g is
    a candidate in g and every later group of its user; candidates are ranked per group.
    """
    n_groups = len(user_first_group)
    liked = np.flatnonzero(rating >= config.like_threshold)  # in (user, bucket, ...) order
    l_group = group[liked]
    # rank of each liked rating within its user by preference, computed once (not per copy)
    pref = np.lexsort((mid[liked], -ts[liked], -rating[liked], user_first_group[l_group]))
    rank = np.empty(len(liked), dtype=np.int64)
    rank[pref] = np.arange(len(liked))
    copies = user_last_group[l_group] - l_group + 1
    # chunk over users (runs of groups), costed by the copies their liked ratings make
    user_starts = np.flatnonzero(np.r_[True, user_first_group[1:] != user_first_group[:-1]])
    per_user_cost = np.zeros(len(user_starts), dtype=np.int64)
    user_of_liked = np.searchsorted(user_starts, user_first_group[l_group])
    np.add.at(per_user_cost, user_of_liked, copies)
    group_bounds = np.append(user_starts, n_groups)
    chunks = []
    for u_lo, u_hi in _chunk_bounds(per_user_cost):
        g_lo, g_hi = int(group_bounds[u_lo]), int(group_bounds[u_hi])
        i_lo, i_hi = np.searchsorted(l_group, [g_lo, g_hi])
        item = np.repeat(np.arange(i_lo, i_hi), copies[i_lo:i_hi])
        target = l_group[item] + _ranges(copies[i_lo:i_hi])
        order = np.lexsort((rank[item], target))
        item, target = item[order], target[order]
        keep = np.arange(len(target)) - np.searchsorted(target, target) < config.top_liked_k
        item, target = item[keep], target[keep]
        sizes = np.bincount(target - g_lo, minlength=g_hi - g_lo)
        chunks.append(_list_array(sizes, mid[liked[item]]))
    return pa.chunked_array(chunks, type=pa.list_(pa.int64()))
