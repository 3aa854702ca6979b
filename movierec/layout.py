"""Where each artifact lives: the one contract between the offline build and serving.

An artifacts tree is `<artifacts_dir>/<variant>/<mode>/`, where mode is `eval` (built from
the training split of the stratified 75/25 seed-42 split, for honest evaluation) or `full`
(built from all ratings, for production). The live path is a symlink that a successful
`make artifacts` flips atomically to a new build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Mode = Literal["eval", "full"]
MODES: tuple[Mode, ...] = ("eval", "full")


@dataclass(frozen=True)
class ArtifactLayout:
    """Paths and Redis names of one artifacts tree.

    Attributes:
        root: `<artifacts_dir>/<variant>/<mode>`.
        variant: MovieLens variant, e.g. "ml-100k".
        mode: "eval" or "full".
    """

    root: Path
    variant: str
    mode: Mode

    @classmethod
    def of(cls, artifacts_dir: Path, variant: str, mode: Mode) -> ArtifactLayout:
        """The layout of `variant` in `mode` under `artifacts_dir`."""
        if mode not in MODES:
            raise ValueError(f"unknown artifacts mode {mode!r}; expected one of {MODES}")
        return cls(Path(artifacts_dir) / variant / mode, variant, mode)

    # Namespace shared by every Redis key, index and Feast project of this tree, so that
    # several variants and modes can live in one Redis without clashing.
    @property
    def namespace(self) -> str:
        """E.g. "ml_100k_eval": lowercase letters, digits and underscores only."""
        return re.sub(r"[^a-z0-9]+", "_", f"{self.variant}_{self.mode}".lower())

    @property
    def splits_dir(self) -> Path:
        """train.parquet and test.parquet (eval mode; full mode has train = all)."""
        return self.root / "splits"

    @property
    def catalog_dir(self) -> Path:
        """movies.parquet (titles, genres, years) and popularity.parquet (fallback list)."""
        return self.root / "catalog"

    @property
    def retrieval_dir(self) -> Path:
        """Two-tower SavedModel (`saved_model/`) and movie_embeddings.parquet."""
        return self.root / "retrieval"

    @property
    def content_dir(self) -> Path:
        """content_embeddings.parquet (MiniLM vectors of each movie's text)."""
        return self.root / "content"

    @property
    def itemcf_dir(self) -> Path:
        """Item-to-item neighbours (`neighbours.npz`), movie ids and users' histories."""
        return self.root / "itemcf"

    @property
    def features_dir(self) -> Path:
        """Feast offline-store parquet sources and the Feast registry."""
        return self.root / "features"

    @property
    def ranking_dir(self) -> Path:
        """Ranker SavedModel (`saved_model/`) and its input spec (`inputs.json`)."""
        return self.root / "ranking"

    @property
    def features_version_key(self) -> str:
        """Redis key naming the features build materialized for this tree; the loader writes
        it last, so its presence means the online store is fully loaded."""
        return f"movierec:{self.namespace}:features_version"

    @property
    def content_index_alias(self) -> str:
        """The RediSearch alias that always points at the live content index."""
        return f"{self.namespace}_movies"

    @property
    def feast_project(self) -> str:
        """The Feast project name (letters, digits, underscores)."""
        return f"movierec_{self.namespace}"
