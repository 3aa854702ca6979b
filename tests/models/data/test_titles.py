from __future__ import annotations

import pytest

from models.data.titles import split_genres, split_title


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Toy Story (1995)", ("Toy Story", 1995)),
        ("Big Bang Theory, The (1994)", ("Big Bang Theory, The", 1994)),
        ("Jumanji (1995) ", ("Jumanji", 1995)),
        ("Seven (Se7en) (1995)", ("Seven (Se7en)", 1995)),
        ("Death Note: Desu nôto (2006\u20132007)", ("Death Note: Desu nôto", 2006)),  # en dash
        ("Cosmos (1980-)", ("Cosmos", 1980)),
        ("Stranger Things", ("Stranger Things", None)),
        ("unknown", ("unknown", None)),
        ("1492: Conquest of Paradise (1992)", ("1492: Conquest of Paradise", 1992)),
        ("Land Before Time III (1995) (V)", ("Land Before Time III (1995) (V)", None)),
        ("(1995)", ("(1995)", None)),
    ],
)
def test_split_title(raw: str, expected: tuple[str, int | None]) -> None:
    assert split_title(raw) == expected


def test_split_genres() -> None:
    assert split_genres("Animation|Children's|Comedy") == ["Animation", "Children's", "Comedy"]
    assert split_genres("(no genres listed)") == []
    assert split_genres("unknown") == []
    assert split_genres("Crime Film-Noir", None) == ["Crime", "Film-Noir"]
