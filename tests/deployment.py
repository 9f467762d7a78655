"""A deployment for fault tests: `gateway serve` replicas as real processes, one real
Redis they share (or none), the config and data dir they share, real tenant API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from tests.conftest import write_routes
from tests.limits.conftest import TenantKeys, write_policies
from tests.processes import GatewayProcess, RedisServer


class Deployment:
    """Write the config once (`configure`), then start replicas with `replica()`."""

    def __init__(self, workdir: Path, redis: RedisServer | None):
        self.workdir, self.redis = workdir, redis
        self.keys = TenantKeys()
        self.replicas: list[GatewayProcess] = []

    def configure(self, upstreams: dict[str, Any], routes: list[dict[str, Any]],
                  tiers: dict[str, Any], tenants: dict[str, Any]) -> Self:
        """routes.yaml and policies/, and one API key per tenant in the key store."""
        write_routes(self.workdir / "routes.yaml", upstreams, routes)
        write_policies(self.workdir / "policies", tiers, tenants)
        self.keys.write(tenants, self.workdir / "data", self.redis_url)
        return self

    @property
    def redis_url(self) -> str | None:
        return self.redis.url if self.redis is not None else None

    def env(self, **extra: str) -> dict[str, str]:
        env = {"GATEWAY_ROUTES_FILE": str(self.workdir / "routes.yaml"),
               "GATEWAY_POLICIES_DIR": str(self.workdir / "policies"),
               "GATEWAY_DATA_DIR": str(self.workdir / "data"),
               "GATEWAY_LOG_LEVEL": "warning", **extra}
        if self.redis is not None:
            env["GATEWAY_REDIS_URL"] = self.redis.url
        return env

    def replica(self, **extra: str) -> GatewayProcess:
        """Start one more replica (its log in the work dir) and wait until it serves."""
        process = GatewayProcess(self.env(**extra), self.workdir)
        self.replicas.append(process)
        return process.start()

    def as_tenant(self, tenant_id: str) -> dict[str, str]:
        return self.keys.as_tenant(tenant_id)

    def stop(self) -> None:
        for process in self.replicas:
            process.stop()
        self.replicas.clear()
