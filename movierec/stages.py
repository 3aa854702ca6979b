"""The stages' names: one name per stage in the code, the API, the metrics and the config.

A stage's name is its `fallbacks[].stage` value, its metric `stage` label, its section in
the Controller's `user_config` (`timeouts.<name>`) and, for a candidate source, its name in
`candidates`, `weights`, the ranker's `<source>_score` inputs and the answer's `sources`.
"""

from __future__ import annotations

from typing import Final

RETRIEVAL: Final = "retrieval"
"""Two-tower retrieval: the user's top movies over the whole catalog."""
CONTENT: Final = "content"
"""Content vectors: movies whose text embeddings lie near the user's liked movies (Redis KNN)."""
ITEMCF: Final = "itemcf"
"""Item-to-item collaborative filtering: movies most similar, by who watched them together,
to the movies the user rated (served by the Retrieval deployment, next to the two-tower
model)."""
FEATURES: Final = "features"
"""The user's online features (Feast, Redis)."""
RANKING: Final = "ranking"
"""The ranker scoring each request's candidates (with their movie features)."""

STAGES: Final[tuple[str, ...]] = (RETRIEVAL, CONTENT, FEATURES, RANKING)
"""Every stage the Controller calls, in a fixed order."""

POPULAR: Final = "popular"
"""The in-memory popularity list: a candidate source that is no stage (fallback and filler)."""

SOURCES: Final[tuple[str, ...]] = (RETRIEVAL, CONTENT, ITEMCF, POPULAR)
"""Candidate sources, in merge order (the order `Candidate.sources` reports them)."""

LIKED_MOVIE_IDS: Final = "liked_movie_ids"
"""User feature: the movies rated at least the like threshold, best first (content seeds)."""
SEEN_MOVIE_IDS: Final = "seen_movie_ids"
"""User feature: every movie the user has rated (never recommended again)."""
IMPRESSED_MOVIE_IDS: Final = "impressed_movie_ids"
"""User feature (event-driven): a movie per recent impression not followed by a click, watch
or rating, newest first (aligned with `IMPRESSED_AT`; a movie appears once per showing)."""
IMPRESSED_AT: Final = "impressed_at"
"""User feature (event-driven): when each of `IMPRESSED_MOVIE_IDS` was shown, epoch seconds."""
