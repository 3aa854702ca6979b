from __future__ import annotations

from pathlib import Path

from models.data.parsers import detect_layout, parse_directory
from models.data.variants import Layout
from tests.models.data._helpers import FIXTURES, assert_schema, rows

SOURCE = FIXTURES / "atomic"


def test_detects_atomic_layout() -> None:
    assert detect_layout(SOURCE, "ml-100k") == (Layout.ATOMIC, "ml-100k")


def test_detects_other_dataset_name(tmp_path: Path) -> None:
    for suffix in (".inter", ".item"):
        (tmp_path / f"toy{suffix}").write_bytes((SOURCE / f"ml-100k{suffix}").read_bytes())
    assert detect_layout(tmp_path, "ml-100k") == (Layout.ATOMIC, "toy")
    data = parse_directory(tmp_path, "ml-100k")
    assert data.variant == "ml-100k"
    assert len(data.ratings) == 5
    assert data.users is None


def test_inter_maps_to_ratings() -> None:
    data = parse_directory(SOURCE, "ml-100k")
    assert_schema("ratings", data.ratings)
    assert rows(data.ratings) == [
        (196, 242, 3.0, 881250949),
        (186, 302, 3.0, 891717742),
        (196, 1412, 4.0, 881251000),
        (186, 267, 1.0, 891717800),
        (186, 543, 5.0, 891717900),
    ]


def test_item_maps_to_movies() -> None:
    data = parse_directory(SOURCE, "ml-100k")
    assert_schema("movies", data.movies)
    assert rows(data.movies) == [
        (242, "Kolya", 1996, ["Comedy"]),
        (302, "L.A. Confidential", 1997, ["Crime", "Film-Noir", "Mystery", "Thriller"]),
        (267, "unknown", None, []),  # RecBole's "unkonwn" typo restored
        (1412, "Land Before Time III: The Time of the Great Giving", 1995,
         ["Animation", "Children's"]),  # release_year "V": year from the title
        (543, "Misérables, Les", 1995, ["Drama", "Musical"]),
    ]  # fmt: skip


def test_user_maps_to_users() -> None:
    data = parse_directory(SOURCE, "ml-100k")
    assert data.users is not None
    assert_schema("users", data.users)
    assert rows(data.users) == [
        (196, 49, "M", "writer", "55105"),
        (186, 39, "F", "executive", "00000"),
    ]


def test_columns_are_found_by_header_name(tmp_path: Path) -> None:
    (tmp_path / "ml-100k.inter").write_text(
        "timestamp:float\trating:float\titem_id:token\tuser_id:token\n881250949\t3\t242\t196\n",
        encoding="utf-8",
    )
    (tmp_path / "ml-100k.item").write_text(
        "item_id:token\tgenre:token_seq\tmovie_title:token_seq\trelease_year:token\n"
        "242\tComedy\tKolya\t1996\n",
        encoding="utf-8",
    )
    data = parse_directory(tmp_path, "ml-100k")
    assert rows(data.ratings) == [(196, 242, 3.0, 881250949)]
    assert rows(data.movies) == [(242, "Kolya", 1996, ["Comedy"])]
