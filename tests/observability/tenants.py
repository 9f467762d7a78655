"""Tenants with real API keys for the observability tests.

The policies/ files a gateway reads, and keys issued by `gateway.auth.api_keys.issue_key`
into the store the gateway itself opens (`open_key_store`: the file in the data
directory, or Redis when the gateway runs with GATEWAY_REDIS_URL), so a request carries
the same kind of credential a tenant's script would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import yaml

from gateway.auth.api_keys import issue_key
from gateway.auth.key_store import open_key_store


def write_policies(policies_dir: Path, tenants: dict[str, Any],
                   tiers: dict[str, Any] | None = None) -> None:
    """policies/tenants.yaml (and tiers.yaml when given)."""
    policies_dir.mkdir(parents=True, exist_ok=True)
    (policies_dir / "tenants.yaml").write_text(
        yaml.safe_dump({"version": 1, "tenants": tenants}))
    if tiers is not None:
        (policies_dir / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": tiers}))


def issue_keys(data_dir: Path, tenants: list[str], redis_url: str | None = None
               ) -> dict[str, str]:
    """One new API key per tenant, stored where a gateway with these settings looks."""

    async def issue() -> dict[str, str]:
        redis = aioredis.from_url(redis_url) if redis_url else None
        try:
            store = open_key_store(data_dir, redis)
            keys = {}
            for tenant in tenants:
                key, record = issue_key(tenant, name="observability test")
                await store.put_key(record)
                keys[tenant] = key
            return keys
        finally:
            if redis is not None:
                await redis.aclose()

    return asyncio.run(issue())


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
