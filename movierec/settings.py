"""Process-wide configuration, read from environment variables (and `.env`).

Every knob has a default that works on a fresh clone; see README "Configuration".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Configuration shared by the CLI, the offline pipeline and the deployments."""

    # The .env file is found by absolute path: Ray replicas do not run from the project root.
    model_config = SettingsConfigDict(
        env_prefix="MOVIEREC_", env_file=PROJECT_ROOT / ".env", extra="ignore"
    )

    data_dir: Path = Field(default=PROJECT_ROOT / "data", description="Datasets and their cache.")
    run_dir: Path = Field(
        default=PROJECT_ROOT / "run", description="PID files, logs and the embedded Redis data."
    )
    artifacts_dir: Path = Field(
        default=PROJECT_ROOT / "artifacts", description="Models, embeddings, features, manifest."
    )
    events_dir: Path | None = Field(
        default=None,
        description="The event log's part files a full build folds in (the Events "
        "deployment's `offline_dir`); unset: <run_dir>/events/<variant>_full.",
    )
    storage_uri: str = Field(
        default="",
        description="Where builds are published and served from: empty for the local "
        "artifacts tree, or s3://bucket/prefix (movierec/storage.py).",
    )
    storage_cache_dir: Path | None = Field(
        default=None,
        description="Local cache of builds fetched from the store (default: "
        "<artifacts_dir>/.store-cache).",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL", "MOVIEREC_S3_ENDPOINT_URL"),
        description="An S3-compatible endpoint (MinIO, Ceph, R2, the local test server); "
        "unset: AWS S3. Credentials come from the AWS chain only.",
    )
    dataset: str = Field(default="ml-100k", description="MovieLens variant to load.")
    dataset_dir: Path | None = Field(
        default=None, description="Explicit local directory holding the raw dataset files."
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "MOVIEREC_REDIS_URL"),
        description="External Redis (with the search module). Unset: use the embedded one.",
    )
    redis_port: int = Field(
        default=0, ge=0, le=65535, description="Embedded Redis port; 0 picks a free one."
    )
    environment: Literal["development", "production"] = Field(
        default="development",
        description="production: the API refuses to start without a strong API key, and "
        "refuses fault injection.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, every API route but /healthz and the docs needs it in the "
        "X-API-Key header. Required (>= 32 characters, not a placeholder) in production.",
    )
    max_body_bytes: int = Field(
        default=16_384, ge=0, le=100 * 2**20, description="Larger request bodies get HTTP 413."
    )
    allow_fault_injection: bool = Field(
        default=False,
        description="Lets the stages' user_config `faults` add delays and errors (tests and "
        "drills only; refused in production).",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Returns the cached settings of this process."""
    return Settings()
