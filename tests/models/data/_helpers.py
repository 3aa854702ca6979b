"""Test helpers: the fixture directory and assertions on the schema's tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from models.data.schema import TABLE_COLUMNS
from models.data.tables import DTYPES

FIXTURES = Path(__file__).parent / "fixtures"


def assert_schema(table: str, frame: pd.DataFrame) -> None:
    """Asserts exact columns, dtypes, and that genres are lists of str."""
    assert tuple(frame.columns) == TABLE_COLUMNS[table]
    for name, dtype in DTYPES[table].items():
        assert frame[name].dtype == dtype, (table, name, frame[name].dtype)
    if table == "movies":
        for genres in frame["genres"]:
            assert isinstance(genres, list)
            assert all(isinstance(genre, str) for genre in genres)


def rows(frame: pd.DataFrame) -> list[tuple]:
    """The frame's rows as plain tuples (NA as None) for exact comparisons."""
    plain = frame.astype(object).where(frame.notna(), None)
    return [tuple(row) for row in plain.itertuples(index=False)]
