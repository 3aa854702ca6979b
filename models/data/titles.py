"""Splitting MovieLens titles into text and year, and genre strings into lists."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A trailing "(1995)", or a range such as "(2006-2007)" / "(2015-)" used for series.
_TRAILING_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-\u2013]\s*(?:\d{4})?)?\)$")

# Genre values that mean "no genre".
NO_GENRE = frozenset({"(no genres listed)", "unknown", ""})


def split_title(raw: str) -> tuple[str, int | None]:
    """Splits a MovieLens title into the text and the trailing release year.

    Surrounding whitespace is dropped first. Only a trailing "(YYYY)" (or a year range,
    whose first year is kept) is removed; titles such as "Big Bang Theory, The (1994)"
    keep their article order, and a title without a trailing year is returned whole.

    Args:
        raw: The title as stored in the source file, e.g. "Toy Story (1995) ".

    Returns:
        (title, year), e.g. ("Toy Story", 1995); year is None where the title has none.
    """
    text = raw.strip()
    match = _TRAILING_YEAR.match(text)
    if match is None or not match.group("title"):
        return text, None
    return match.group("title"), int(match.group("year"))


def clean_genres(names: Iterable[str]) -> list[str]:
    """Drops placeholders ("unknown", "(no genres listed)", blanks) from genre names.

    Args:
        names: Genre names in source order.

    Returns:
        The real genre names, stripped, in source order.
    """
    cleaned = (name.strip() for name in names)
    return [name for name in cleaned if name not in NO_GENRE]


def split_genres(raw: str, sep: str | None = "|") -> list[str]:
    """Splits a genre field such as "Animation|Children's|Comedy" into a list.

    Args:
        raw: The field's text.
        sep: Separator; None splits on runs of whitespace (RecBole token_seq fields).

    Returns:
        Genre names; an empty list for "(no genres listed)" or "unknown".
    """
    return clean_genres(raw.split(sep))


def split_titles(raw_titles: Iterable[str]) -> tuple[list[str], list[int | None]]:
    """Applies `split_title` to many titles.

    Args:
        raw_titles: Titles as stored in the source file.

    Returns:
        (titles, years), two lists of the same length as the input.
    """
    titles: list[str] = []
    years: list[int | None] = []
    for raw in raw_titles:
        title, year = split_title(raw)
        titles.append(title)
        years.append(year)
    return titles, years
