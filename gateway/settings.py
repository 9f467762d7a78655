"""Process settings: environment variables with the GATEWAY_ prefix (and `.env`).

Built once by the CLI and passed into `create_app(settings)`; never instantiated at import.
Every setting has a safe default so the gateway starts on one machine with no Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Per-user state directory (XDG), e.g. ~/.local/share/ai-gateway."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ai-gateway"


class Settings(BaseSettings):
    """Everything an operator can set without editing routes.yaml or policies/."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: int = Field(1, ge=1)

    routes_file: Path = Path("routes.yaml")
    policies_dir: Path = Path("policies")
    reload_interval: float = Field(0.25, gt=0, le=60, description="seconds between file checks")

    data_dir: Path = Field(default_factory=default_data_dir)
    redis_url: str | None = None

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    access_log: bool = True

    # Upstream connection pool: one shared client, keep-alive connections reused.
    upstream_pool_size: int = Field(512, ge=1, description="most requests in flight upstream")
    # Shadow copies are best effort: beyond this many in flight they are dropped.
    shadow_max_in_flight: int = Field(64, ge=0)

    # -- observability (docs/observability.md) --
    # Prometheus metrics at /metrics; off only to measure what they cost.
    metrics: bool = True

    # -- Rate limits, concurrency caps, response cache (docs/rate-limits.md, docs/cache.md) --
    # Storage is chosen by redis_url: None keeps counters and cache in this process.
    # moving-window is exact for every window; the others trade exactness for memory.
    rate_limit_strategy: Literal["moving-window", "sliding-window-counter", "fixed-window"] = (
        "moving-window")
    # Store down (Redis unreachable or its breaker open): serve unlimited, or answer 503.
    store_fail_mode: Literal["open", "closed"] = "open"
    store_breaker_failures: int = Field(3, ge=1, description="consecutive errors that open it")
    store_breaker_cooldown: float = Field(1.0, gt=0, le=300, description="seconds before a probe")
    store_max_in_flight: int = Field(64, ge=1, description="concurrent Redis calls (< pool)")
    store_timeout: float = Field(1.0, gt=0, le=30, description="seconds per Redis call")
    # A replica's in-flight slots live this long unless refreshed; a crashed one's expire.
    inflight_slot_ttl: float = Field(30.0, ge=1, le=3600)
    cache_max_bytes: int = Field(64 * 1024 * 1024, ge=0, description="memory cache, all entries")
    cache_max_entry_bytes: int = Field(1024 * 1024, ge=0, description="larger answers not cached")

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.redis_url is not None and not self.redis_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("GATEWAY_REDIS_URL must start with redis://, rediss:// or unix://")
        return self
