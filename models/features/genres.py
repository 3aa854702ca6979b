"""The fixed genre order shared by every genre vector in the feature store.

`movie_genre_vector` (multi-hot) and `user_genre_affinity` (shares) are Array(Float32) of
length `len(GENRES)` in exactly this order, for every MovieLens variant: the union of the
genres of ml-100k, ml-1m, ml-latest-small and ml-25m, alphabetical as MovieLens lists them.
ml-100k/ml-1m spell "Children's"; it is folded into "Children". Genres outside this list
(and "(no genres listed)"/"unknown") are kept in `movie_genres` but set no vector slot.

Never reorder or remove entries: trained rankers index these vectors by position. A new genre
goes at the end (and bumps the feature service version).
"""

from __future__ import annotations

from collections.abc import Iterable

GENRES: tuple[str, ...] = (
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

GENRE_INDEX: dict[str, int] = {genre: i for i, genre in enumerate(GENRES)}

# Spellings that differ between variants, mapped to the canonical name.
GENRE_ALIASES: dict[str, str] = {"Children's": "Children", "Childrens": "Children"}

# Placeholders some variants use for "no genre"; dropped.
NO_GENRE = frozenset({"(no genres listed)", "unknown", ""})


def canonical_genres(genres: Iterable[str] | None) -> list[str]:
    """Returns the genres with aliases folded, placeholders and duplicates dropped, order kept."""
    out: list[str] = []
    for raw in genres if genres is not None else ():
        name = GENRE_ALIASES.get(str(raw).strip(), str(raw).strip())
        if name not in NO_GENRE and name not in out:
            out.append(name)
    return out
