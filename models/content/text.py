"""Movie text: the one string per movie that the sentence encoder embeds.

The text is built only from catalogue metadata (title, year, genres) and, for the variants
that have them, the movie's most frequent user tags, e.g.::

    "The Empire Strikes Back (1980). Genres: Action, Adventure, Drama, Romance, Sci-Fi, War."
    "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy. Tags: pixar, fun."

It is deterministic: the same tables always give byte-identical strings (tags are ranked by
distinct users, then alphabetically), so embeddings can be cached and compared across builds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

DEFAULT_MAX_TAGS = 10
"""Tags kept per movie: enough to describe it, few enough to stay under the encoder's 256
word-piece window together with the title and genres."""

# Articles that MovieLens moves to the end of a title ("Matrix, The"). Only a trailing
# ", <article>" is un-inverted, so ordinary commas ("Crouching Tiger, Hidden Dragon") are kept.
_ARTICLES = (
    "The|A|An|"  # English
    "Le|La|Les|L'|Un|Une|"  # French
    "Der|Die|Das|Ein|Eine|"  # German
    "El|Los|Las|Una|"  # Spanish
    "Il|Lo|Gli|I|"  # Italian
    "De|Het|Den|Det|En|Et"  # Dutch / Scandinavian
)
_INVERTED = re.compile(rf"^(?P<body>.+), (?P<article>{_ARTICLES})$")
_AKA = re.compile(r"^(?P<main>.*?)(?P<aka>(?: \([^()]*\))*)$")


def uninvert_title(title: str) -> str:
    """Moves a trailing article back to the front of a MovieLens title.

    Handles the alternative ("a.k.a.") titles in parentheses too:
    ``"Horseman on the Roof, The (Hussard sur le toit, Le)"`` becomes
    ``"The Horseman on the Roof (Le Hussard sur le toit)"``.

    Args:
        title: Title without the trailing "(year)".

    Returns:
        The title in natural word order; unchanged when it has no inverted article.
    """
    match = _AKA.match(title.strip())
    main, aka = (match["main"], match["aka"]) if match else (title.strip(), "")
    parts = [_uninvert_one(main)]
    parts += [f"({_uninvert_one(alt)})" for alt in re.findall(r"\(([^()]*)\)", aka)]
    return " ".join(p for p in parts if p)


def _uninvert_one(title: str) -> str:
    match = _INVERTED.match(title)
    if not match:
        return title
    article = match["article"]
    separator = "" if article.endswith("'") else " "
    return f"{article}{separator}{match['body']}"


def top_tags(
    tags: pd.DataFrame,
    max_tags: int = DEFAULT_MAX_TAGS,
    min_users: int = 1,
) -> dict[int, list[str]]:
    """Ranks each movie's tags by how many distinct users applied them.

    Tags are normalized (stripped, lower-cased, inner whitespace collapsed) before counting,
    so "Pixar" and "pixar " are one tag. Ties are broken alphabetically.

    Args:
        tags: Normalized tags table (user_id, movie_id, tag, timestamp).
        max_tags: Tags kept per movie.
        min_users: Minimum distinct users for a tag to count.

    Returns:
        movie_id -> up to `max_tags` tags, most frequent first. Movies without tags are absent.
    """
    if tags.empty or max_tags <= 0:
        return {}
    normalized = (
        tags["tag"].astype("string").str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
    )
    frame = pd.DataFrame(
        {
            "movie_id": tags["movie_id"].astype("int64"),
            "user_id": tags["user_id"],
            "tag": normalized,
        }
    )
    frame = frame[frame["tag"].notna() & (frame["tag"] != "")]
    counts = (
        frame.drop_duplicates(["movie_id", "user_id", "tag"])
        .groupby(["movie_id", "tag"], sort=False)
        .size()
        .rename("users")
        .reset_index()
    )
    counts = counts[counts["users"] >= min_users]
    counts = counts.sort_values(
        ["movie_id", "users", "tag"], ascending=[True, False, True], kind="mergesort"
    )
    ranked = counts.groupby("movie_id", sort=True).head(max_tags)
    out: dict[int, list[str]] = {}
    for movie_id, tag in zip(ranked["movie_id"].tolist(), ranked["tag"].tolist(), strict=True):
        out.setdefault(int(movie_id), []).append(str(tag))
    return out


def format_movie_text(
    title: str,
    year: int | None,
    genres: Sequence[str],
    tags: Sequence[str] = (),
    *,
    uninvert: bool = True,
) -> str:
    """Formats one movie as a short descriptive sentence.

    Args:
        title: Title without the year.
        year: Release year, or None when unknown.
        genres: Genre names, in catalogue order.
        tags: Tags, most relevant first.
        uninvert: Move trailing articles to the front ("Matrix, The" -> "The Matrix").

    Returns:
        E.g. "Star Wars (1977). Genres: Action, Adventure, Romance, Sci-Fi, War."
    """
    name = uninvert_title(title) if uninvert else title.strip()
    text = f"{name} ({year})." if year is not None else f"{name}."
    if len(genres):
        text += " Genres: " + ", ".join(genres) + "."
    if len(tags):
        text += " Tags: " + ", ".join(tags) + "."
    return text


def build_movie_texts(
    movies: pd.DataFrame,
    tags: pd.DataFrame | None = None,
    *,
    max_tags: int = DEFAULT_MAX_TAGS,
    min_tag_users: int = 1,
    uninvert: bool = True,
) -> pd.DataFrame:
    """Builds the text of every movie in the catalogue.

    Args:
        movies: Normalized movies table (movie_id, title, year, genres).
        tags: Normalized tags table, or None for variants without tags.
        max_tags: Most frequent tags appended per movie (0 disables tags).
        min_tag_users: Minimum distinct users for a tag to be used.
        uninvert: Move trailing articles to the front of titles.

    Returns:
        DataFrame sorted by movie_id with columns movie_id (int64) and text (str),
        one row per movie.
    """
    per_movie: Mapping[int, list[str]] = (
        top_tags(tags, max_tags, min_tag_users) if tags is not None else {}
    )
    ordered = movies.sort_values("movie_id", kind="mergesort")
    texts = [
        format_movie_text(
            str(title),
            None if pd.isna(year) else int(year),
            _as_list(genres),
            per_movie.get(int(movie_id), ()),
            uninvert=uninvert,
        )
        for movie_id, title, year, genres in zip(
            ordered["movie_id"].tolist(),
            ordered["title"].tolist(),
            ordered["year"].tolist(),
            ordered["genres"].tolist(),
            strict=True,
        )
    ]
    return pd.DataFrame({"movie_id": ordered["movie_id"].astype("int64").to_numpy(), "text": texts})


def _as_list(genres: Iterable[str] | None) -> list[str]:
    if genres is None or (isinstance(genres, float) and pd.isna(genres)):
        return []
    return [str(g) for g in genres]
