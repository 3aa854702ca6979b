"""The registry of supported MovieLens variants: where each archive lives and what it holds.

Archive checksums (SHA-256 and size in bytes) are the ones TensorFlow Datasets pins in
`tensorflow_datasets/url_checksums/movielens.txt`; they agree with the digests other projects
publish for the same GroupLens files. The expected counts are the ones each variant's README
states, and are checked after parsing an archive.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.data.errors import DatasetError

GROUPLENS_BASE_URL = "https://files.grouplens.org/datasets/movielens"


class Layout(StrEnum):
    """The file layouts the parsers understand."""

    CLASSIC = "classic"  # ml-100k: u.data, u.item, u.user (tab/pipe separated)
    DAT = "dat"  # ml-1m: ratings.dat, movies.dat, users.dat ("::" separated)
    ATOMIC = "atomic"  # RecBole atomic files: <name>.inter, <name>.item, <name>.user
    CSV = "csv"  # ml-latest-small, ml-25m: ratings.csv, movies.csv, tags.csv


@dataclass(frozen=True)
class Archive:
    """A GroupLens zip archive.

    Attributes:
        url: Download URL.
        sha256: Hex SHA-256 of the whole archive; None where no trusted digest is known.
        size: Size in bytes; None where unknown.
        root: Directory inside the archive that holds the data files.
    """

    url: str
    sha256: str | None
    size: int | None
    root: str


@dataclass(frozen=True)
class Counts:
    """Row counts a complete copy of a variant must have.

    Attributes:
        ratings: Number of ratings.
        users: Number of distinct users in the ratings.
        movies: Number of rows of the movies table.
        tags: Number of tag applications; None for variants without tags.
    """

    ratings: int
    users: int
    movies: int
    tags: int | None = None


@dataclass(frozen=True)
class Variant:
    """One MovieLens release.

    Attributes:
        name: Variant name, e.g. "ml-100k"; also the cache directory's name.
        layout: Layout of the files in the GroupLens archive.
        archive: Where to download it and how to verify it.
        expected: Counts checked after loading the archive.
    """

    name: str
    layout: Layout
    archive: Archive
    expected: Counts

    @property
    def has_users(self) -> bool:
        """Whether the variant ships user demographics."""
        return self.layout in (Layout.CLASSIC, Layout.DAT)

    @property
    def has_tags(self) -> bool:
        """Whether the variant ships tag applications."""
        return self.expected.tags is not None


def _archive(name: str, sha256: str | None, size: int | None) -> Archive:
    return Archive(url=f"{GROUPLENS_BASE_URL}/{name}.zip", sha256=sha256, size=size, root=name)


VARIANTS: dict[str, Variant] = {
    "ml-100k": Variant(
        name="ml-100k",
        layout=Layout.CLASSIC,
        archive=_archive(
            "ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", 4924029
        ),
        expected=Counts(ratings=100_000, users=943, movies=1_682),
    ),
    "ml-1m": Variant(
        name="ml-1m",
        layout=Layout.DAT,
        archive=_archive(
            "ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", 5917549
        ),
        expected=Counts(ratings=1_000_209, users=6_040, movies=3_883),
    ),
    "ml-latest-small": Variant(
        name="ml-latest-small",
        layout=Layout.CSV,
        archive=_archive(
            "ml-latest-small",
            "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            978202,
        ),
        expected=Counts(ratings=100_836, users=610, movies=9_742, tags=3_683),
    ),
    "ml-25m": Variant(
        name="ml-25m",
        layout=Layout.CSV,
        archive=_archive(
            "ml-25m", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", 261978986
        ),
        expected=Counts(ratings=25_000_095, users=162_541, movies=62_423, tags=1_093_360),
    ),
}


def get_variant(name: str) -> Variant:
    """Looks a variant up by name.

    Args:
        name: Variant name, e.g. "ml-100k".

    Returns:
        The registered variant.

    Raises:
        DatasetError: The name is not registered; the message lists the valid names.
    """
    try:
        return VARIANTS[name]
    except KeyError:
        valid = ", ".join(VARIANTS)
        raise DatasetError(f"unknown variant {name!r}; valid variants: {valid}") from None
