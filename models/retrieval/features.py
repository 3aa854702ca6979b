"""Turns the normalized MovieLens tables (see `models.data.schema`) into dense numpy arrays.

Pure pandas/numpy, no TensorFlow: the towers consume these arrays as raw features and do
their own preprocessing (lookups, tokenization, bucketing) so the exported SavedModel takes
raw values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

USER_FEATURE_COLUMNS = ("age", "gender", "occupation", "zip_code")


@dataclass(frozen=True)
class MovieTable:
    """The movie catalog as aligned arrays; row i describes movie `movie_id[i]`.

    Attributes:
        movie_id: [N] int64 MovieLens ids, unique.
        title: [N] object array of str.
        genres: [N, G] object array of str, right-padded with "" (G >= 1).
        year: [N] int64 release year, 0 where unknown.
    """

    movie_id: np.ndarray
    title: np.ndarray
    genres: np.ndarray
    year: np.ndarray

    def __len__(self) -> int:
        return len(self.movie_id)

    def as_features(self) -> dict[str, np.ndarray]:
        """Returns the tower inputs: movie_id [N], title [N], genres [N, G], year [N]."""
        return {
            "movie_id": self.movie_id,
            "title": self.title,
            "genres": self.genres,
            "year": self.year,
        }


@dataclass(frozen=True)
class UserTable:
    """Known users as aligned arrays; row i describes user `user_id[i]`.

    Attributes:
        user_id: [U] int64 MovieLens ids, unique.
        features: Side features present in the variant, each [U]: age int64 (0 unknown),
            gender/occupation/zip_code object arrays of str ("" unknown). Empty when the
            variant has no users table.
    """

    user_id: np.ndarray
    features: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.user_id)

    def rows(self, user_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Returns tower inputs for `user_ids` ([B] int64); unknown users get defaults.

        Returns:
            {"user_id": [B] int64, plus one [B] array per side feature}.
        """
        user_ids = np.asarray(user_ids, dtype=np.int64)
        out: dict[str, np.ndarray] = {"user_id": user_ids}
        if not self.features:
            return out
        index = pd.Index(self.user_id).get_indexer(user_ids)
        known = index >= 0
        for name, values in self.features.items():
            default = np.int64(0) if values.dtype.kind == "i" else ""
            column = np.full(len(user_ids), default, dtype=values.dtype)
            column[known] = values[index[known]]
            out[name] = column
        return out


def build_movie_table(movies: pd.DataFrame) -> MovieTable:
    """Builds the catalog arrays from a `movies` table (movie_id, title, year, genres).

    Args:
        movies: The schema's movies table; `year` may hold <NA>, `genres` lists of str.

    Returns:
        The catalog, sorted by movie_id.
    """
    movies = movies.sort_values("movie_id").reset_index(drop=True)
    if movies["movie_id"].duplicated().any():
        raise ValueError("movies.movie_id must be unique")
    genre_lists = [list(g) if g is not None else [] for g in movies["genres"]]
    width = max(1, max((len(g) for g in genre_lists), default=1))
    genres = np.full((len(movies), width), "", dtype=object)
    for i, names in enumerate(genre_lists):
        genres[i, : len(names)] = [str(n) for n in names]
    year = pd.to_numeric(movies["year"], errors="coerce").fillna(0).to_numpy(dtype=np.int64)
    return MovieTable(
        movie_id=movies["movie_id"].to_numpy(dtype=np.int64),
        title=movies["title"].fillna("").astype(str).to_numpy(dtype=object),
        genres=genres,
        year=year,
    )


def build_user_table(
    users: pd.DataFrame | None, ratings: pd.DataFrame, *, use_features: bool = True
) -> UserTable:
    """Builds the user arrays: every user of `ratings`, with side features if available.

    Args:
        users: The schema's users table, or None for variants without one.
        ratings: Training ratings; their users are the known users (id vocabulary).
        use_features: Drop the side features even if `users` is given.

    Returns:
        Users sorted by id. Side features are present iff `users` is given and
        `use_features` is set.
    """
    user_ids = np.sort(ratings["user_id"].unique()).astype(np.int64)
    if users is None or not use_features:
        return UserTable(user_id=user_ids, features={})
    table = users.drop_duplicates("user_id").set_index("user_id").reindex(user_ids)
    features: dict[str, np.ndarray] = {
        "age": pd.to_numeric(table["age"], errors="coerce").fillna(0).to_numpy(dtype=np.int64),
    }
    for name in ("gender", "occupation", "zip_code"):
        features[name] = table[name].fillna("").astype(str).to_numpy(dtype=object)
    return UserTable(user_id=user_ids, features=features)


def build_history(
    ratings: pd.DataFrame, user_ids: np.ndarray, movie_ids: np.ndarray, max_len: int
) -> np.ndarray:
    """Builds each user's most recent rated movies as catalog positions.

    Args:
        ratings: Training ratings (user_id, movie_id, timestamp).
        user_ids: [U] users, one output row each.
        movie_ids: [N] catalog ids; position i+1 encodes `movie_ids[i]`, 0 is padding.
        max_len: H, the most recent interactions kept per user.

    Returns:
        [U, H] int64 matrix of catalog positions (1-based), right-padded with 0.
    """
    position = pd.Series(np.arange(1, len(movie_ids) + 1), index=movie_ids)
    frame = ratings[["user_id", "movie_id", "timestamp"]].copy()
    frame["pos"] = frame["movie_id"].map(position)
    frame = frame.dropna(subset=["pos"]).sort_values(["user_id", "timestamp", "movie_id"])
    frame = frame.groupby("user_id", sort=False).tail(max_len)
    out = np.zeros((len(user_ids), max_len), dtype=np.int64)
    row_of = pd.Series(np.arange(len(user_ids)), index=user_ids)
    for user_id, group in frame.groupby("user_id", sort=False):
        row = row_of.get(user_id)
        if row is None:
            continue
        values = group["pos"].to_numpy(dtype=np.int64)
        out[row, : len(values)] = values
    return out
