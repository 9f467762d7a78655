"""Single policies over memory stores (and the file key store) and a fake transport: each
decision on its own, with no server and no socket (the end-to-end tests are in
tests/limits, tests/auth...)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.auth.api_keys import issue_key
from gateway.auth.key_store import FileKeyStore
from gateway.auth.service import AuthService
from gateway.errors import Forbidden, InsufficientScope, RateLimited, Unauthenticated
from gateway.middleware import _access_fields
from gateway.pipeline import run_pipeline
from gateway.pipeline.authenticate import AuthenticatePolicy
from gateway.pipeline.authorize import AuthorizePolicy
from gateway.pipeline.cache import CachePolicy
from gateway.pipeline.rate_limit import RateLimitPolicy
from gateway.proxy import _run_cleanups
from gateway.stores import open_stores
from gateway.upstream import UpstreamClient
from gateway.upstream_health import TargetHealth
from tests.conftest import make_settings
from tests.pipeline.fakes import FakeTransport, answer, config, context

PRIVATE = {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "scopes": ["read"]}


def test_rate_limit_charges_then_refuses_with_retry_after(tmp_path: Path) -> None:
    cfg = config(tmp_path, [PRIVATE], tiers={"basic": {"rate": "3/minute"}},
                 tenants={"acme": {"tier": "basic"}})
    policy = RateLimitPolicy(open_stores(make_settings(tmp_path)), fail_closed=False)

    async def run() -> list[object]:
        seen: list[object] = []
        for _ in range(4):
            ctx = context(cfg, "/api/x", tenant="acme")
            try:
                await policy.on_request(ctx)
                seen.append(ctx.rate_limit_remaining)
                # The access line takes it from the context, not from the header bytes.
                line = _access_fields({"state": {}}, ctx, 200, 0.001)
                assert line["rate_limit_remaining"] == ctx.rate_limit_remaining
            except RateLimited as exc:
                seen.append(exc)
                assert dict(ctx.response_headers)[b"ratelimit-remaining"] == b"0"
        return seen

    *remaining, refused = asyncio.run(run())
    assert remaining == [2, 1, 0]
    assert isinstance(refused, RateLimited) and 1 <= refused.retry_after <= 60
    assert refused.detail == "rate limit of 3 per 1 minute exceeded"


def test_rate_limit_in_flight_slot_is_freed_by_the_cleanup(tmp_path: Path) -> None:
    cfg = config(tmp_path, [PRIVATE], tiers={"one": {"max_in_flight": 1}},
                 tenants={"acme": {"tier": "one"}})
    policy = RateLimitPolicy(open_stores(make_settings(tmp_path)), fail_closed=False)

    async def run() -> None:
        first = context(cfg, "/api/x", tenant="acme")
        await policy.on_request(first)
        with pytest.raises(RateLimited, match="more than 1 requests in flight"):
            await policy.on_request(context(cfg, "/api/x", tenant="acme"))
        await _run_cleanups(first)  # what the proxy runs however a request ends
        await policy.on_request(context(cfg, "/api/x", tenant="acme"))

    asyncio.run(run())


def test_authorize_checks_the_tenant_route_list_then_the_scopes(tmp_path: Path) -> None:
    other = {**PRIVATE, "name": "other", "match": {"prefix": "/other"}}
    cfg = config(tmp_path, [PRIVATE, other],
                 tenants={"acme": {}, "narrow": {"routes": ["other"]}})
    policy = AuthorizePolicy()
    assert asyncio.run(policy.on_request(context(cfg, "/api/x", tenant="acme"))) is None
    with pytest.raises(Forbidden, match="tenant 'narrow' may not call route 'api'"):
        asyncio.run(policy.on_request(context(cfg, "/api/x", tenant="narrow")))
    with pytest.raises(InsufficientScope) as info:
        asyncio.run(policy.on_request(context(cfg, "/api/x", tenant="acme",
                                              scopes=frozenset({"write"}))))
    assert 'scope="read"' in info.value.headers["WWW-Authenticate"]


def test_cache_serves_a_hit_without_calling_the_upstream(tmp_path: Path) -> None:
    cached = {"name": "c", "match": {"path": "/c"}, "upstream": "main", "public": True,
              "cache": {"ttl": 60}}
    cfg = config(tmp_path, [cached])
    policy = CachePolicy(open_stores(make_settings(tmp_path)), max_entry_bytes=1 << 20)
    transport = FakeTransport(answer(200, b"fresh", content_type="application/json"))
    upstream = UpstreamClient(TargetHealth(), transport)

    async def one(headers: dict[str, str] | None = None) -> tuple[str, bytes | None]:
        ctx = context(cfg, "/c", headers=headers, body=b"")
        response = await run_pipeline([policy], ctx, lambda c: upstream.send(c, None))
        for cleanup in ctx.cleanups:
            await cleanup()
        return ctx.cache_status, response.body

    async def run() -> list[tuple[str, bytes | None]]:
        return [await one(), await one(), await one({"Cache-Control": "no-cache"})]

    assert asyncio.run(run()) == [("MISS", b"fresh"), ("HIT", b"fresh"), ("BYPASS", b"fresh")]
    assert len(transport.sent) == 2  # the miss and the bypass; the hit never left


def test_authenticate_sets_the_principal_or_answers_401(tmp_path: Path) -> None:
    cfg = config(tmp_path, [PRIVATE], tenants={"acme": {}, "off": {"enabled": False}})
    settings = make_settings(tmp_path)
    key, record = issue_key("acme", scopes=("read",))
    off_key, off_record = issue_key("off")

    async def run() -> None:
        store = FileKeyStore(settings.data_dir / "credentials.json")
        await store.put_key(record)
        await store.put_key(off_record)
        auth = AuthService(settings)
        async with httpx.AsyncClient() as http:  # for external JWKS: none configured
            await auth.start(None, http)
            try:
                policy = AuthenticatePolicy(auth)
                ctx = context(cfg, "/api/x", headers={"X-API-Key": key})
                await policy.on_request(ctx)
                assert ctx.principal is not None
                assert (ctx.principal.tenant_id, ctx.principal.scopes) == (
                    "acme", frozenset({"read"}))
                with pytest.raises(Unauthenticated) as none:
                    await policy.on_request(context(cfg, "/api/x"))
                assert none.value.headers["WWW-Authenticate"] == 'Bearer realm="gateway"'
                for bad in (key[:-2] + "xx", off_key, "not-a-key"):
                    with pytest.raises(Unauthenticated) as info:
                        await policy.on_request(context(
                            cfg, "/api/x", headers={"Authorization": f"Bearer {bad}"}))
                    assert 'error="invalid_token"' in info.value.headers["WWW-Authenticate"]
            finally:
                await auth.close()

    asyncio.run(run())
