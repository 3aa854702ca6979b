"""One recommendation request, validated once by the API and read by every later step."""

from __future__ import annotations

from dataclasses import dataclass, field

from movierec.payloads import CandidateFilter


@dataclass(frozen=True, slots=True)
class RecommendRequest:
    """`GET /recommendations/{user_id}` after validation.

    Attributes:
        user_id: The user.
        k: How many movies to answer.
        allowed: What the answer may hold: excluded ids, genres (already checked against the
            catalog), release years. Candidate sources filter with it where they can; the
            Controller filters every candidate with it again.
    """

    user_id: int
    k: int
    allowed: CandidateFilter = field(default_factory=CandidateFilter)

    @property
    def genres(self) -> list[str]:
        """The requested genres ([] for any), as the rules take them."""
        return list(self.allowed.genres)
