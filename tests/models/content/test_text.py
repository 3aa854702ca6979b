"""Movie text: formatting, title un-inversion, tag ranking, determinism."""

from __future__ import annotations

import pandas as pd
import pytest

from models.content.text import build_movie_texts, format_movie_text, top_tags, uninvert_title


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Empire Strikes Back, The", "The Empire Strikes Back"),
        ("Star Wars", "Star Wars"),
        ("Crouching Tiger, Hidden Dragon (Wo hu)", "Crouching Tiger, Hidden Dragon (Wo hu)"),
        ("Horseman on the Roof, The (Hussard, Le)", "The Horseman on the Roof (Le Hussard)"),
        ("Appartement, L'", "L'Appartement"),
        ("Good, the Bad and the Ugly, The", "The Good, the Bad and the Ugly"),
        ("Seven (Se7en)", "Seven (Se7en)"),
    ],
)  # fmt: skip
def test_uninvert_title(title: str, expected: str) -> None:
    assert uninvert_title(title) == expected


def test_format_movie_text() -> None:
    assert (
        format_movie_text("Star Wars", 1977, ["Action", "Adventure", "Romance", "Sci-Fi", "War"])
        == "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War."
    )
    assert format_movie_text("Unknown", None, []) == "Unknown."
    assert (
        format_movie_text("Matrix, The", 1999, ["Sci-Fi"], ["cyberpunk", "keanu reeves"])
        == "The Matrix (1999). Genres: Sci-Fi. Tags: cyberpunk, keanu reeves."
    )
    assert format_movie_text("Matrix, The", 1999, [], uninvert=False) == "Matrix, The (1999)."


def test_top_tags_counts_distinct_users_and_breaks_ties_alphabetically() -> None:
    tags = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3, 3, 4, 5, 5],
            "movie_id": [10, 10, 10, 10, 10, 10, 20, 20],
            "tag": ["Pixar", "pixar", " PIXAR ", "funny", "zany", "Funny", "dark", "dark"],
            "timestamp": [0] * 8,
        }
    )
    # movie 10: pixar by users {1, 2}, funny by {3, 4}, zany by {3}; user 1's repeat counts once.
    assert top_tags(tags) == {10: ["funny", "pixar", "zany"], 20: ["dark"]}
    assert top_tags(tags, max_tags=1) == {10: ["funny"], 20: ["dark"]}
    assert top_tags(tags, min_users=2) == {10: ["funny", "pixar"]}


def test_build_movie_texts_is_deterministic_and_sorted() -> None:
    movies = pd.DataFrame(
        {
            "movie_id": [3, 1, 2],
            "title": ["Toy Story", "Matrix, The", "Nameless"],
            "year": pd.array([1995, 1999, None], dtype="Int64"),
            "genres": [["Animation", "Children's"], ["Sci-Fi"], []],
        }
    )
    tags = pd.DataFrame(
        {"user_id": [1, 2], "movie_id": [3, 3], "tag": ["pixar", "toys"], "timestamp": [0, 0]}
    )
    texts = build_movie_texts(movies, tags)
    assert texts["movie_id"].tolist() == [1, 2, 3]
    assert texts["text"].tolist() == [
        "The Matrix (1999). Genres: Sci-Fi.",
        "Nameless.",
        "Toy Story (1995). Genres: Animation, Children's. Tags: pixar, toys.",
    ]
    shuffled = movies.sample(frac=1.0, random_state=1)
    pd.testing.assert_frame_equal(build_movie_texts(shuffled, tags), texts)
    assert build_movie_texts(movies, tags, max_tags=0)["text"].iat[2].endswith("Children's.")
