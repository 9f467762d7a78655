"""Rate limits and in-flight caps through a real gateway, on memory and on a real Redis."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gateway.stores.strategies import STRATEGIES
from tests.conftest import write_routes
from tests.limits.conftest import (
    count_slots,
    fire,
    wait_until,
    write_policies,
    write_setup,
)

STORES = ["memory", "redis"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for the store under test (a throwaway Redis for `redis`)."""
    if request.param == "memory":
        return {}
    server = request.getfixturevalue("redis_server")
    return {"redis_url": server.url}


def test_limit_admits_exactly_then_429_with_headers(tmp_path, backend, start_limited, store,
                                                    as_tenant):
    write_setup(tmp_path, backend.url, {"basic": {"rate": "5/minute"}},
                {"acme": {"tier": "basic"}})
    gw = start_limited(**store)
    before = backend.hits["/x"]
    answers = [gw.client.get("/api/x", headers=as_tenant("acme")) for _ in range(8)]
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
    assert backend.hits["/x"] - before == 5  # refused requests never reach the backend
    for i, r in enumerate(answers[:5]):
        assert r.headers["ratelimit-limit"] == "5"
        assert r.headers["ratelimit-remaining"] == str(4 - i)
        # gcra: one unit comes back every 60 / 5 = 12 s (Reset: until the next one does).
        assert 11 <= int(r.headers["ratelimit-reset"]) <= 12
        assert r.headers["ratelimit-policy"] == "5;w=60"
    refused = answers[5]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 429
    assert refused.headers["ratelimit-remaining"] == "0"
    assert 11 <= int(refused.headers["retry-after"]) <= 12
    assert refused.headers["retry-after"] == refused.headers["ratelimit-reset"]


def test_window_resets_as_documented(tmp_path, backend, start_limited, store, as_tenant):
    # gcra: the whole burst is back one window after it was spent.
    write_setup(tmp_path, backend.url, {"basic": {"rate": "3 per 1 second"}},
                {"acme": {"tier": "basic"}})
    gw = start_limited(**store)
    h = as_tenant("acme")
    assert [gw.client.get("/api/x", headers=h).status_code for _ in range(4)] == [
        200, 200, 200, 429]
    r = gw.client.get("/api/x", headers=h)
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    time.sleep(1.05)
    assert [gw.client.get("/api/x", headers=h).status_code for _ in range(4)] == [
        200, 200, 200, 429]


def test_cost_is_charged_per_route(tmp_path, backend, start_limited, store, as_tenant):
    routes = [
        {"name": "heavy", "match": {"prefix": "/heavy"}, "upstream": "main", "rewrite": "/",
         "cost": 4},
        {"name": "light", "match": {"prefix": "/light"}, "upstream": "main", "rewrite": "/"},
    ]
    write_setup(tmp_path, backend.url, {"basic": {"rate": "10/minute"}},
                {"acme": {"tier": "basic"}}, routes)
    gw = start_limited(**store)
    h = as_tenant("acme")
    r = gw.client.get("/heavy/x", headers=h)
    assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "6"
    assert gw.client.get("/heavy/x", headers=h).headers["ratelimit-remaining"] == "2"
    # 2 units left: a heavy request (4) is refused, uncharged; light ones (1) still pass.
    assert gw.client.get("/heavy/x", headers=h).status_code == 429
    assert gw.client.get("/light/x", headers=h).headers["ratelimit-remaining"] == "1"
    assert gw.client.get("/light/x", headers=h).headers["ratelimit-remaining"] == "0"
    assert gw.client.get("/light/x", headers=h).status_code == 429


def test_tenant_override_beats_tier_and_default_tier_applies(tmp_path, backend,
                                                             start_limited, store, as_tenant):
    tiers = {"basic": {"rate": "2/minute"}, "default": {"rate": "1/minute"}}
    tenants = {"acme": {"tier": "basic"}, "big": {"tier": "basic",
                                                 "overrides": {"rate": "4/minute"}},
               "loose": {}}
    routes = [
        {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/"},
        {"name": "open", "match": {"prefix": "/open"}, "upstream": "main", "rewrite": "/",
         "public": True},
    ]
    write_setup(tmp_path, backend.url, tiers, tenants, routes)
    gw = start_limited(extra_tenants=["stranger"], **store)

    def admitted(tenant: str) -> int:
        codes = [gw.client.get("/api/x", headers=as_tenant(tenant)).status_code
                 for _ in range(6)]
        return codes.count(200)

    assert admitted("acme") == 2
    assert admitted("big") == 4
    assert admitted("loose") == 1  # no tier: the `default` tier
    # A real key whose tenant is not in tenants.yaml never reaches the limiter: 401.
    before = backend.hits["/x"]
    stranger = gw.client.get("/api/x", headers=as_tenant("stranger"))
    assert stranger.status_code == 401 and "ratelimit-limit" not in stranger.headers
    assert backend.hits["/x"] == before
    # Tenants are counted apart; requests to a public route have no principal and are
    # not limited, even when they carry a key (a public route ignores credentials).
    assert all(gw.client.get("/open/x").status_code == 200 for _ in range(5))
    assert "ratelimit-limit" not in gw.client.get("/open/x").headers
    r = gw.client.get("/open/x", headers=as_tenant("loose"))
    assert r.status_code == 200 and "ratelimit-limit" not in r.headers


def test_several_limits_all_apply_and_refusal_charges_none(tmp_path, backend,
                                                           start_limited, store, as_tenant):
    routes = [
        {"name": "a", "match": {"prefix": "/a"}, "upstream": "main", "rewrite": "/"},
        {"name": "b", "match": {"prefix": "/b"}, "upstream": "main", "rewrite": "/"},
    ]
    # Tenant-wide 3/second and 5/minute, plus 2/minute on route `a` alone.
    write_setup(tmp_path, backend.url,
                {"basic": {"rate": "3/second; 5/minute", "routes": {"a": "2/minute"}}},
                {"acme": {"tier": "basic"}}, routes)
    gw = start_limited(**store)
    h = as_tenant("acme")
    assert [gw.client.get("/a/x", headers=h).status_code for _ in range(3)] == [200, 200, 429]
    r = gw.client.get("/b/x", headers=h)
    # The refused /a request charged nothing: 5 - 2 = 3 tenant-wide units were left, and
    # the limit closest to exhaustion is reported.
    assert r.status_code == 200
    assert r.headers["ratelimit-limit"] in ("3", "5")
    assert r.headers["ratelimit-policy"] == "3;w=1, 5;w=60"
    time.sleep(1.05)  # let the per-second limit refill
    assert [gw.client.get("/b/x", headers=h).status_code for _ in range(3)] == [200, 200, 429]


def test_limits_follow_a_config_reload(tmp_path, backend, start_limited, store,
                                       as_tenant):
    write_setup(tmp_path, backend.url, {"basic": {"rate": "1/minute"}},
                {"acme": {"tier": "basic"}})
    gw = start_limited(**store)
    h = as_tenant("acme")
    assert gw.client.get("/api/x", headers=h).status_code == 200
    assert gw.client.get("/api/x", headers=h).status_code == 429
    # Only the policies change. (Rewriting routes.yaml too could be picked up on its own,
    # a generation still carrying the old tiers.) Wait for the config carrying the edit.
    write_policies(tmp_path / "policies", {"basic": {"rate": "5/minute"}},
                   {"acme": {"tier": "basic"}})
    wait_until(lambda: gw.holder.current.tiers["basic"].rate == "5/minute")
    assert gw.client.get("/api/x", headers=h).status_code == 200


def test_in_flight_cap(tmp_path, backend, start_limited, store, as_tenant):
    write_setup(tmp_path, backend.url, {"basic": {"max_in_flight": 3}},
                {"acme": {"tier": "basic"}})
    gw = start_limited(**store)
    before = backend.hits["/slow"]
    answers = asyncio.run(fire([gw.url], 12, "/api/slow?delay=0.5", as_tenant("acme")))
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] * 3 + [429] * 9
    assert backend.hits["/slow"] - before == 3
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert "in flight" in refused.json()["detail"]
    # Released when they finished: the next three pass again.
    answers = asyncio.run(fire([gw.url], 3, "/api/slow?delay=0.1", as_tenant("acme")))
    assert [r.status_code for r in answers] == [200] * 3
    # Released just after each answer was sent: soon, not necessarily before it arrived.
    wait_until(lambda: asyncio.run(_count(gw, "acme")) == 0)


async def _count(gw: Any, tenant: str) -> int:
    stores = gw.app.stores
    if stores.redis is None:
        return int(await stores.rate_limits.count(tenant))
    # Count over a fresh connection: the app's client belongs to the server's loop.
    return await count_slots(gw.app.settings.redis_url, tenant)


def test_slots_released_after_disconnects_and_timeouts(tmp_path, backend, start_limited,
                                                       store, as_tenant):
    routes = [
        {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/"},
        {"name": "short", "match": {"prefix": "/short"}, "upstream": "main", "rewrite": "/",
         "timeout": {"connect": 1, "total": 0.05}},
    ]
    write_setup(tmp_path, backend.url, {"basic": {"max_in_flight": 200}},
                {"acme": {"tier": "basic"}}, routes)
    # Every timeout must reach the upstream: keep its circuit breaker out of the way.
    write_routes(tmp_path / "routes.yaml", {"main": {
        "targets": [{"url": backend.url}], "circuit_breaker": {"failures": 100_000}}}, routes)
    gw = start_limited(**store)
    h = as_tenant("acme")

    async def run() -> tuple[list[int], int]:
        codes: list[int] = []
        disconnects = 0
        async with httpx.AsyncClient(timeout=0.05,
                                     limits=httpx.Limits(max_connections=200)) as client:
            async def one(i: int) -> None:
                nonlocal disconnects
                try:
                    if i % 2:  # the upstream times out: 504
                        r = await client.get(gw.url + "/short/slow?delay=1", headers=h,
                                             timeout=5)
                        codes.append(r.status_code)
                    else:  # the client gives up and hangs up mid-request
                        await client.get(gw.url + "/api/slow?delay=1", headers=h)
                except httpx.TimeoutException:
                    disconnects += 1

            for start in range(0, total, BATCH):
                await asyncio.gather(*(one(i) for i in range(start, start + BATCH)))
        return codes, disconnects

    BATCH = 50
    total = 200  # 1,000 across three replicas in test_replicas.py
    codes, disconnects = asyncio.run(run())
    assert codes == [504] * (total // 2) and disconnects == total // 2
    wait_until(lambda: asyncio.run(_count(gw, "acme")) == 0)
    assert gw.app.stores.live_slots == {}


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_remaining_is_what_each_charge_left(tmp_path, backend, start_limited, store,
                                            as_tenant, strategy):
    """100 admitted at once: each answer's RateLimit-Remaining is what its own charge
    left, so they are 99..0, each once, whatever the strategy."""
    write_setup(tmp_path, backend.url, {"basic": {"rate": "100/hour"}},
                {"acme": {"tier": "basic"}})
    gw = start_limited(rate_limit_strategy=strategy, **store)
    # The window-based strategies restart their count on the hour: not in this burst.
    while time.time() % 3600 > 3590:
        time.sleep(1)
    answers = asyncio.run(fire([gw.url], 130, "/api/x", as_tenant("acme")))
    admitted = [r for r in answers if r.status_code == 200]
    assert len(admitted) == 100
    assert sorted(int(r.headers["ratelimit-remaining"]) for r in admitted) == list(range(100))
    assert all(r.headers["ratelimit-remaining"] == "0"
               for r in answers if r.status_code == 429)


def test_retry_after_names_the_limit_that_frees_last(tmp_path, backend, start_limited, store,
                                                     as_tenant):
    # Both limits refuse the third request; the daily one frees hours after the minute one.
    write_setup(tmp_path, backend.url, {"basic": {"rate": "2/minute; 2/day"}},
                {"acme": {"tier": "basic"}})
    gw = start_limited(**store)
    h = as_tenant("acme")
    assert [gw.client.get("/api/x", headers=h).status_code for _ in range(2)] == [200, 200]
    refused = gw.client.get("/api/x", headers=h)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 3600, refused.headers
    assert int(refused.headers["ratelimit-reset"]) > 3600
    assert "2 per 1 day" in refused.json()["detail"], refused.json()
