"""The ranker's derived features: name -> the raw inputs it reads (no TensorFlow here).

`RankerConfig.features` lists derived feature names; the model computes them in-graph
(`models.ranking.model.derived_features`) and `inputs.json` lists the raw inputs they need.
"""

from __future__ import annotations

FEATURE_INPUTS: dict[str, tuple[str, ...]] = {
    # candidate generators (per-user comparable: flags, ranks; raw scores are not)
    "in_retrieval": ("in_retrieval",),
    "in_content": ("in_content",),
    "in_both": ("in_retrieval", "in_content"),
    "retrieval_log_rank": ("in_retrieval", "retrieval_rank"),
    "content_log_rank": ("in_content", "content_rank"),
    "retrieval_score": ("in_retrieval", "retrieval_score"),
    "content_score": ("in_content", "content_score"),
    "merged_score": ("merged_score",),
    "in_itemcf": ("in_itemcf",),
    "itemcf_log_rank": ("in_itemcf", "itemcf_rank"),
    "itemcf_score": ("in_itemcf", "itemcf_score"),
    # movie (Feast movie_features / movie_metadata)
    "log_count": ("movie_rating_count",),
    "popularity_pct": ("movie_popularity_pct",),
    "log_recent": ("movie_recent_rating_count",),
    "trend": ("movie_rating_count", "movie_recent_rating_count"),
    "rating_mean": ("movie_rating_mean", "movie_rating_count"),
    "year": ("movie_year",),
    "genres": ("movie_genre_vector",),
    "movie_id": ("movie_id",),
    # user (Feast user_features / user_demographics)
    "user_log_count": ("user_rating_count",),
    "user_rating_mean": ("user_rating_mean", "user_rating_count"),
    "genre_affinity": ("movie_genre_vector", "user_genre_affinity"),
    "genre_products": ("movie_genre_vector", "user_genre_affinity"),
    "age": ("user_age",),
    "gender": ("user_gender",),
    "occupation": ("user_occupation",),
}

CANDIDATE_FEATURES: tuple[str, ...] = (
    "in_retrieval",
    "in_content",
    "in_both",
    "retrieval_log_rank",
    "content_log_rank",
    "retrieval_score",
    "content_score",
    "merged_score",
)
MOVIE_FEATURES: tuple[str, ...] = (
    "log_count",
    "popularity_pct",
    "log_recent",
    "trend",
    "rating_mean",
    "year",
)
ITEMCF_FEATURES: tuple[str, ...] = ("in_itemcf", "itemcf_log_rank", "itemcf_score")
USER_FEATURES: tuple[str, ...] = ("user_log_count", "user_rating_mean")
GENRE_FEATURES: tuple[str, ...] = ("genres", "genre_affinity", "genre_products")
DEMOGRAPHIC_FEATURES: tuple[str, ...] = ("age", "gender", "occupation")
