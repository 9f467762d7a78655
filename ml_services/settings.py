"""Settings shared by every inference service, read from the environment.

Use `ServiceSettings` as the base of a service's own settings class; the subclass only
sets its environment prefix (`ML_SENTIMENT_`, `ML_CLASSIFY_`) and adds its model knobs.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Network, limits and batching knobs common to all services."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=0, le=65535)
    log_level: str = "warning"

    # Request limits: beyond them the request is refused before any model work.
    max_texts: int = Field(default=256, ge=1, description="texts per request (413 beyond)")
    max_chars: int = Field(default=10_000, ge=1, description="characters per text (422 beyond)")
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1, description="request body (413)")

    # Micro-batching: see ml_services/batching.py and the README for how they interact.
    max_batch_size: int = Field(default=512, ge=1, description="texts per model call")
    max_wait_ms: float = Field(default=0.0, ge=0.0, description="extra wait to fill a batch")
    inline_max_texts: int = Field(
        default=0, ge=0, description="batches this small run on the event loop, not the thread"
    )

    # Drift monitoring (ml_services/drift.py): the sliding window's size in texts, and the
    # texts it needs before ml_drift_psi is exported (PSI of a few texts is noise).
    drift_window_texts: int = Field(default=1000, ge=10, description="texts per drift window")
    drift_min_texts: int = Field(default=200, ge=1, description="texts before PSI is shown")

    # Shown in every answer; lets two instances (e.g. a canary) tell themselves apart.
    model_version: str | None = None
