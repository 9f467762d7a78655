"""Process settings: environment variables with the GATEWAY_ prefix (and `.env`).

Built once by the CLI and passed into `create_app(settings)`; never instantiated at import.
Every setting has a safe default so the gateway starts on one machine with no Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.stores.strategies import StrategyName


def default_data_dir() -> Path:
    """Per-user state directory (XDG), e.g. ~/.local/share/ai-gateway."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ai-gateway"


# -- authentication (gateway.auth) ------------------------------------------------------

# JWT algorithms an external issuer may be pinned to: asymmetric only, so a public key can
# never double as an HMAC secret (the "alg confusion" attack), and never "none".
ASYMMETRIC_ALGORITHMS = frozenset({
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
})


class ExternalIssuer(BaseModel):
    """An identity provider whose JWTs the gateway accepts (GATEWAY_EXTERNAL_ISSUERS, JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1)
    jwks_url: str = Field(pattern=r"^https?://")
    audience: str = Field(min_length=1)
    tenant_claim: str = "tenant"
    scopes_claim: str = "scope"  # a space-separated string or a list of strings
    algorithms: list[str] = Field(["RS256"], min_length=1)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, v: list[str]) -> list[str]:
        bad = [a for a in v if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"not an asymmetric JWT algorithm: {', '.join(bad)}")
        return v


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

    # -- graceful drain on SIGTERM (gateway/drain.py, docs/operations.md) --
    # Seconds between SIGTERM and closing the listener, /readyz failing meanwhile: the
    # time an orchestrator takes to stop routing here (Kubernetes: about 5).
    drain_grace: float = Field(0.0, ge=0, le=300)
    # Then the longest wait for requests and streams in flight before they are cut.
    drain_timeout: float = Field(20.0, gt=0, le=3600)

    # Upstream connection pool: one shared client, keep-alive connections reused.
    upstream_pool_size: int = Field(512, ge=1, description="most requests in flight upstream")
    # Shadow copies are best effort: beyond this many in flight they are dropped.
    shadow_max_in_flight: int = Field(64, ge=0)

    # -- observability (docs/observability.md) --
    # Prometheus metrics at /metrics; off only to measure what they cost.
    metrics: bool = True

    # -- Rate limits, concurrency caps, response cache (docs/rate-limits.md, docs/cache.md) --
    # Storage is chosen by redis_url: None keeps counters and cache in this process.
    # gcra: O(1) state per limit, a burst of N refilled at N per window (docs/rate-limits.md).
    rate_limit_strategy: StrategyName = "gcra"
    # Store down (Redis unreachable or its breaker open): serve unlimited, or answer 503.
    store_fail_mode: Literal["open", "closed"] = "open"
    store_breaker_failures: int = Field(3, ge=1, description="consecutive errors that open it")
    store_breaker_cooldown: float = Field(1.0, gt=0, le=300, description="seconds before a probe")
    store_timeout: float = Field(1.0, gt=0, le=30, description="seconds per Redis call")
    # The stores' Redis client: MuxRedis (one pipelined connection, measured faster) or
    # redis-py's (a blocking pool); both pass the same store suites (stores/redis_bridge.py).
    store_redis_client: Literal["mux", "redis-py"] = "mux"
    # A replica's in-flight slots live this long unless refreshed; a crashed one's expire.
    inflight_slot_ttl: float = Field(30.0, ge=1, le=3600)
    cache_max_bytes: int = Field(64 * 1024 * 1024, ge=0, description="memory cache, all entries")
    cache_max_entry_bytes: int = Field(1024 * 1024, ge=0, description="larger answers not cached")

    # -- asynchronous jobs, idempotency, webhooks (docs/jobs.md) --
    # Job executors in the gateway process; None: 4 without Redis (the queue lives in
    # this process, nothing else can reach it), 0 with Redis (run `gateway worker`).
    jobs_workers: int | None = Field(None, ge=0, le=1024)
    # A running job's lease: renewed by its worker every third of it; a job whose worker
    # stopped renewing (died) is taken over by another worker after this long.
    jobs_visibility_timeout: float = Field(30.0, ge=0.5, le=3600)
    jobs_max_queued: int = Field(10_000, ge=1, description="per tenant, unless its tier says")
    jobs_stream_maxlen: int = Field(1_000_000, ge=1000, description="XADD MAXLEN ~ bound")
    jobs_shutdown_grace: float = Field(20.0, ge=0, le=3600, description="SIGTERM: seconds "
                                       "to finish running jobs before handing them back")
    jobs_max_result_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    jobs_list_keep: int = Field(10_000, ge=10, description="recent jobs GET /v1/jobs lists")
    idempotency_ttl: float = Field(86_400.0, ge=60, le=30 * 86_400, description="seconds")
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff: float = Field(2.0, gt=0, le=3600, description="first retry's mean delay")
    webhook_max_backoff: float = Field(600.0, gt=0, le=86_400)
    webhook_timeout: float = Field(10.0, gt=0, le=300)
    webhook_tolerance: int = Field(300, ge=1, description="seconds a signature is valid")
    # The key webhook secrets are derived from (docs/jobs.md): set the same value on every
    # replica and worker; unset, one is made in GATEWAY_DATA_DIR (one machine).
    webhook_key: SecretStr | None = None

    # -- authentication (gateway.auth; see docs/auth.md) --
    # Our own access tokens: `iss` (default http://<host>:<port>), `aud`, lifetime.
    token_issuer: str | None = None
    token_audience: str = "ai-gateway"
    token_lifetime: int = Field(3600, ge=60, le=86400, description="seconds")
    # PEM file (one key) or directory of PEM files (newest name signs); default data_dir.
    signing_key_path: Path | None = None
    # How often the in-process key/client snapshot re-checks its store (file or Redis):
    # the bound on how late a revocation is seen, and never a per-request round-trip.
    key_cache_ttl: float = Field(0.25, gt=0, le=0.5)
    # Past this age without a successful store check, API keys are refused (fail closed).
    key_store_max_staleness: float = Field(30.0, gt=0)
    external_issuers: list[ExternalIssuer] = []
    jwks_min_refresh_interval: float = Field(30.0, ge=0, description="unknown-kid refetch")
    jwks_max_age: float = Field(3600.0, gt=0, description="JWKS refetched when older")
    jwt_leeway: float = Field(30.0, ge=0, le=300, description="seconds of exp/nbf slack")

    # -- the admin API (/admin/, docs/admin.md): off unless a token is given --
    # At least 32 characters; never a tenant's key. The file form suits mounted secrets.
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None

    def admin_credential(self) -> str | None:
        """The admin token, from the setting or its file (read once, at start-up)."""
        if self.admin_token is not None:
            token = self.admin_token.get_secret_value()
        elif self.admin_token_file is not None:
            try:
                token = self.admin_token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"GATEWAY_ADMIN_TOKEN_FILE: cannot read it: "
                                 f"{exc.strerror}") from None
        else:
            return None
        if len(token) < 32 or token.startswith("gw_"):
            raise ValueError("the admin token must be at least 32 characters and not a "
                             "tenant's API key (e.g. `openssl rand -hex 32`)")
        return token

    # -- request heads, enforced by the server protocol (docs/contract.md) --
    # nginx's defaults (large_client_header_buffers 4 8k); a longer line or head is 431.
    max_header_line_bytes: int = Field(8 * 1024, ge=1024, le=1024 * 1024)
    max_header_bytes: int = Field(32 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_headers: int = Field(100, ge=16, le=10_000, description="header lines per request")
    # Slow clients (slowloris): the whole head must arrive within header_timeout of its
    # first byte (or of the connection's opening: an idle new connection is closed then),
    # and a body may pause at most body_timeout between two reads; over either: 408 and
    # close. nginx's client_header_timeout / client_body_timeout, shorter defaults.
    header_timeout: float = Field(10.0, gt=0, le=600, description="seconds")
    body_timeout: float = Field(30.0, gt=0, le=3600, description="seconds between reads")

    @property
    def in_process_job_workers(self) -> int:
        """How many job executors the gateway process runs (see `jobs_workers`)."""
        if self.jobs_workers is not None:
            return self.jobs_workers
        return 4 if self.redis_url is None else 0

    @property
    def issuer_url(self) -> str:
        """The `iss` of our tokens; also the base URL published in the RFC 8414 metadata."""
        if self.token_issuer:
            return self.token_issuer.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.redis_url is not None:
            from gateway.stores.redis_url import redis_target

            # The scheme (one Redis, a cluster, Sentinel) and every option understood.
            target = redis_target(self.redis_url)
            if target.kind != "single" and self.store_redis_client == "redis-py":
                raise ValueError("GATEWAY_STORE_REDIS_CLIENT=redis-py serves one Redis "
                                 "only; a cluster or Sentinel URL takes mux")
        if self.admin_token is not None and self.admin_token_file is not None:
            raise ValueError("give GATEWAY_ADMIN_TOKEN or GATEWAY_ADMIN_TOKEN_FILE, not both")
        if self.admin_token is not None:
            self.admin_credential()  # its shape checked now; a file is read at start-up
        if self.max_header_line_bytes > self.max_header_bytes:
            raise ValueError("GATEWAY_MAX_HEADER_LINE_BYTES must not exceed "
                             "GATEWAY_MAX_HEADER_BYTES")
        return self
