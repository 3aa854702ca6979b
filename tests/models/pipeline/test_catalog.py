import pandas as pd

from models.pipeline.catalog import dataset_fingerprint, popularity


def _ratings(rows: list[tuple[int, int, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating"])
    frame["timestamp"] = 0
    return frame


def test_popularity_ranks_by_count_then_mean_then_id() -> None:
    ratings = _ratings(
        [(1, 10, 5.0), (2, 10, 3.0), (1, 20, 4.0), (2, 20, 4.0), (3, 30, 1.0), (3, 40, 1.0)]
    )
    pop = popularity(ratings)
    # 10 and 20 both have 2 ratings with mean 4.0, so the lower id comes first.
    assert pop["movie_id"].tolist() == [10, 20, 30, 40]
    assert pop["rating_count"].tolist() == [2, 2, 1, 1]
    assert pop["mean_rating"].tolist() == [4.0, 4.0, 1.0, 1.0]
    assert pop["rank"].tolist() == [1, 2, 3, 4]


def test_popularity_mean_breaks_count_ties() -> None:
    pop = popularity(_ratings([(1, 7, 2.0), (1, 8, 5.0)]))
    assert pop["movie_id"].tolist() == [8, 7]


def test_fingerprint_changes_with_content_not_with_copies() -> None:
    movies = pd.DataFrame({"movie_id": [1, 2], "genres": [["Drama"], ["Comedy", "War"]]})
    ratings = _ratings([(1, 1, 4.0)])
    first = dataset_fingerprint({"ratings": ratings, "movies": movies, "users": None})
    same = dataset_fingerprint({"ratings": ratings.copy(), "movies": movies.copy(), "users": None})
    changed_movies = movies.assign(genres=[["Drama"], ["Comedy"]])
    other = dataset_fingerprint({"ratings": ratings, "movies": changed_movies, "users": None})
    assert first == same
    assert first != other
