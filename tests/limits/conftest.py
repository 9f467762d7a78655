"""Fixtures for limits and cache tests: gateways whose requests come from real tenants.

Every tenant in the test's tenants.yaml gets one real API key, issued with `issue_key`
and written through the real key store the gateway reads (the credentials file in its
data dir, or Redis when it shares one) before the gateway starts. `as_tenant(tenant_id)`
is the Authorization header carrying that tenant's key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth.api_keys import ApiKeyRecord, issue_key
from gateway.auth.key_store import open_key_store
from gateway.stores import connect_mux, connect_redis
from gateway.stores.breaker import StoreBreaker
from gateway.stores.redis import RedisRateLimitStore
from tests.conftest import RunningGateway, make_settings, write_routes
from tests.servers import ThreadedServer


def write_policies(policies_dir: Path, tiers: dict[str, Any],
                   tenants: dict[str, Any]) -> None:
    policies_dir.mkdir(parents=True, exist_ok=True)
    (policies_dir / "tiers.yaml").write_text(yaml.safe_dump({"version": 1, "tiers": tiers}))
    (policies_dir / "tenants.yaml").write_text(
        yaml.safe_dump({"version": 1, "tenants": tenants}))


def write_setup(tmp_path: Path, upstream_url: str, tiers: dict[str, Any],
                tenants: dict[str, Any], routes: list[dict[str, Any]] | None = None) -> None:
    """routes.yaml with an `api` prefix route (unless `routes` given) and the policies."""
    if routes is None:
        routes = [{"name": "api", "match": {"prefix": "/api"}, "upstream": "main",
                   "rewrite": "/"}]
    write_routes(tmp_path / "routes.yaml", {"main": {"targets": [{"url": upstream_url}]}},
                 routes)
    write_policies(tmp_path / "policies", tiers, tenants)


def tenants_in(policies_dir: Path) -> list[str]:
    data = yaml.safe_load((policies_dir / "tenants.yaml").read_text())
    return list(data.get("tenants") or {})


class TenantKeys:
    """One real API key per tenant; `as_tenant(t)` is the header that presents it."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, ApiKeyRecord]] = {}

    def as_tenant(self, tenant_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[tenant_id][0]}"}

    def records(self, tenants: Iterable[str]) -> list[ApiKeyRecord]:
        for tenant in tenants:
            if tenant not in self.keys:
                self.keys[tenant] = issue_key(tenant, name="limits-test")
        return [self.keys[t][1] for t in tenants]

    def write(self, tenants: Iterable[str], data_dir: Path, redis_url: str | None) -> None:
        """Issue keys for `tenants` (once each) and store them where a gateway with this
        data dir / Redis looks: the same factory the gateway uses picks the store."""
        self._put(self.records(list(tenants)), data_dir, redis_url)

    def revoke(self, tenant: str, data_dir: Path, redis_url: str | None) -> None:
        """Revoke `tenant`'s key now, as `gateway keys revoke` does (gateway/auth/admin.py)."""
        self._put([replace(self.keys[tenant][1], revoked=time.time())], data_dir, redis_url)

    @staticmethod
    def _put(records: list[ApiKeyRecord], data_dir: Path, redis_url: str | None) -> None:
        async def put() -> None:
            redis = connect_redis(redis_url) if redis_url else None
            store = open_key_store(data_dir, redis)
            try:
                for record in records:
                    await store.put_key(record)
            finally:
                await store.close()
                if redis is not None:
                    await redis.aclose()

        asyncio.run(put())


@pytest.fixture
def tenant_keys() -> TenantKeys:
    return TenantKeys()


@pytest.fixture
def as_tenant(tenant_keys: TenantKeys) -> Callable[[str], dict[str, str]]:
    """`as_tenant(tenant_id)`: request headers carrying that tenant's real API key."""
    return tenant_keys.as_tenant


@pytest.fixture
def start_limited(tmp_path: Path, tenant_keys: TenantKeys,
                  start_gateway: Callable[..., RunningGateway]
                  ) -> Callable[..., RunningGateway]:
    """Like start_gateway, after writing a key for every tenant in tenants.yaml (and for
    `extra_tenants`, which tenants.yaml need not name) to the gateway's key store."""

    def start(extra_tenants: Sequence[str] = (), **overrides: Any) -> RunningGateway:
        settings = make_settings(tmp_path, **overrides)
        tenant_keys.write([*tenants_in(settings.policies_dir), *extra_tenants],
                          settings.data_dir, settings.redis_url)
        return start_gateway(**overrides)

    return start


class Upstream:
    """A small backend for cache tests: answers with the Cache-Control it is asked for."""

    def __init__(self) -> None:
        self.hits = 0
        self.app = Starlette(routes=[Route("/{path:path}", self.answer,
                                           methods=["GET", "POST"])])
        self.server = ThreadedServer(self.app).start()
        self.url = self.server.url

    async def answer(self, request: Request) -> Response:
        self.hits += 1
        await request.body()
        delay = float(request.query_params.get("delay", "0"))
        if delay:
            await asyncio.sleep(delay)
        headers = {"X-Hit": str(self.hits)}
        if "cc" in request.query_params:
            headers["Cache-Control"] = request.query_params["cc"]
        status = int(request.query_params.get("status", "200"))
        return Response(f'{{"hit": {self.hits}}}', status, headers,
                        media_type="application/json")


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    u = Upstream()
    yield u
    u.server.stop()


async def fire(urls: Sequence[str], n: int, path: str, headers: dict[str, str],
               request_timeout: float = 30) -> list[httpx.Response]:
    """Send n requests at once, round-robin over `urls`; all answers, in order."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=request_timeout, limits=limits) as client:
        return list(await asyncio.gather(*(
            client.get(urls[i % len(urls)] + path, headers=headers) for i in range(n))))


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


async def count_slots(redis_url: str, tenant: str) -> int:
    """Live in-flight slots of `tenant` in that Redis, over a connection of its own."""
    client = connect_mux(redis_url)
    breaker = StoreBreaker("redis", 3, 1.0, None)
    try:
        return await RedisRateLimitStore(client, breaker, "gcra", 30).count(tenant)
    finally:
        await client.aclose()
