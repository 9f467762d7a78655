"""The Redis path: one script call per request (charge.lua) that charges every limit and
takes the in-flight slot, or charges nothing."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.asyncio.connection import AbstractConnection

from gateway.config import load_config
from gateway.context import Principal, RequestContext
from gateway.errors import RateLimited
from gateway.pipeline.rate_limit import RateLimitPolicy
from gateway.stores import open_stores
from gateway.stores.redis_mux import _Link
from tests.conftest import make_settings
from tests.limits.conftest import fire, wait_until, write_setup

ROUTES = [
    {"name": "a", "match": {"prefix": "/a"}, "upstream": "main", "rewrite": "/"},
    {"name": "b", "match": {"prefix": "/b"}, "upstream": "main", "rewrite": "/"},
    {"name": "heavy", "match": {"prefix": "/heavy"}, "upstream": "main", "rewrite": "/",
     "cost": 3},
]


def window_key(scope: str, amount: int, seconds: int) -> str:
    """The moving window's key of a limit: a list with one entry per unit charged."""
    return f"gw:rl:mw/{scope}/{amount}/{seconds}"


def codes(answers: list[httpx.Response]) -> list[int]:
    return sorted(r.status_code for r in answers)


async def fire_mixed(url: str, paths: list[str], headers: dict[str, str]
                     ) -> list[httpx.Response]:
    """Every path at once, over as many connections; the answers in path order."""
    limits = httpx.Limits(max_connections=len(paths))
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        return list(await asyncio.gather(*(client.get(url + p, headers=headers)
                                           for p in paths)))


def test_charges_all_or_nothing_across_limits_and_cap(tmp_path, backend, start_limited,
                                                      redis_server, as_tenant):
    write_setup(tmp_path, backend.url,
                {"basic": {"rate": "20/minute", "routes": {"a": "3/minute"},
                           "max_in_flight": 4}},
                {"acme": {"tier": "basic"}}, ROUTES)
    # The moving window keeps one entry per unit charged: its keys show what was charged.
    gw = start_limited(redis_url=redis_server.url, rate_limit_strategy="moving-window")
    h = as_tenant("acme")
    r = redis.Redis.from_url(redis_server.url)
    tenant, route_a = window_key("t/{acme}", 20, 60), window_key("r/{acme}/a", 3, 60)

    # 30 at once on /a: its route limit admits 3, and the refused 27 charge the
    # tenant-wide limit nothing (the two-step design charged it for those that saw
    # room at first and lost the race for the route's last units).
    answers = asyncio.run(fire([gw.url], 30, "/a/x", h))
    assert codes(answers) == [200] * 3 + [429] * 27
    assert r.llen(route_a) == 3
    assert r.llen(tenant) == 3

    # /a is exhausted; 20 /a requests refused by its limit take no in-flight slot, so
    # the 4 slow /b requests sent with them all get one of the 4.
    paths = ["/a/x"] * 20 + ["/b/slow?delay=0.5"] * 4
    answers = asyncio.run(fire_mixed(gw.url, paths, h))
    assert [a.status_code for a in answers] == [429] * 20 + [200] * 4
    assert all("in flight" not in a.json()["detail"] for a in answers[:20])
    assert r.llen(tenant) == 7 and r.llen(route_a) == 3

    # 10 slow /b at once: the cap admits 4; the 6 refused by it charge nothing.
    answers = asyncio.run(fire([gw.url], 10, "/b/slow?delay=0.5", h))
    assert codes(answers) == [200] * 4 + [429] * 6
    assert all("in flight" in a.json()["detail"] for a in answers if a.status_code == 429)
    assert r.llen(tenant) == 11
    wait_until(lambda: r.zcard("gw:inflight:{acme}") == 0)
    r.close()


class RoundTrips:
    """Counts what this process writes to Redis: one send is one round trip (a pipeline is
    one send too), whichever client sends it (the stores' MuxRedis, or redis-py's pool
    that `limits` and the key store use)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.sent: list[bytes] = []
        original = AbstractConnection.send_packed_command
        mux_write = _Link._write  # every command the mux sends, answered or not

        async def counted(conn: Any, command: Any, check_health: bool = True) -> None:
            packed = command if isinstance(command, bytes) else b"".join(command)
            self.sent.append(packed.split(b"\r\n")[2])  # the command's name
            await original(conn, command, check_health)

        def mux_counted(link: _Link, packed: bytes, fut: Any) -> None:
            self.sent.append(packed.split(b"\r\n")[2])
            mux_write(link, packed, fut)

        monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
        monkeypatch.setattr(_Link, "_write", mux_counted)


def evalsha_calls(client: redis.Redis) -> int:
    """EVALSHA calls Redis has run since the last CONFIG RESETSTAT."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


@pytest.mark.parametrize("cap", [None, 5], ids=["rate-only", "with-cap"])
def test_one_request_is_one_redis_round_trip(tmp_path: Path, backend, redis_server,
                                             monkeypatch, cap: int | None) -> None:
    tier: dict[str, Any] = {"rate": "10/minute; 100/hour", "routes": {"a": "5/minute"}}
    if cap is not None:
        tier["max_in_flight"] = cap
    write_setup(tmp_path, backend.url, {"basic": tier}, {"acme": {"tier": "basic"}}, ROUTES)
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    config = load_config(settings.routes_file, settings.policies_dir)
    watch = redis.Redis.from_url(redis_server.url)

    def ctx() -> RequestContext:
        route, params = config.router.match("GET", "/a/x")
        c = RequestContext(request_id="r", config=config, route=route, path_params=params,
                           method="GET", path="/a/x", query=b"", headers=[], client_ip="",
                           started=0.0)
        c.principal = Principal(tenant_id="acme", credential_id="k", kind="api_key")
        return c

    trips = RoundTrips(monkeypatch)

    async def go() -> tuple[list[bytes], list[bytes]]:
        stores = open_stores(settings)
        policy = RateLimitPolicy(stores, fail_closed=True)
        try:
            warm = ctx()  # connects, and loads the script (NOSCRIPT, SCRIPT LOAD) once
            await policy.on_request(warm)
            for cleanup in warm.cleanups:
                await cleanup()
            watch.config_resetstat()
            trips.sent.clear()
            one = ctx()
            assert await policy.on_request(one) is None
            assert (b"ratelimit-remaining", b"3") in one.response_headers
            assert evalsha_calls(watch) == 1  # Redis ran one script for it
            before_cleanup = list(trips.sent)
            for cleanup in one.cleanups:  # after the answer: release the slot
                await cleanup()
            return before_cleanup, list(trips.sent)
        finally:
            await stores.aclose()

    before_cleanup, after = asyncio.run(go())
    assert before_cleanup == [b"EVALSHA"]
    assert after == ([b"EVALSHA"] if cap is None else [b"EVALSHA", b"ZREM"])
    watch.close()


def test_refused_requests_are_one_round_trip_too(tmp_path: Path, backend, redis_server,
                                                 monkeypatch) -> None:
    # `heavy` (cost 3) could never fit 1/minute, which the config refuses: not allowed here.
    write_setup(tmp_path, backend.url, {"basic": {"rate": "1/minute", "max_in_flight": 2}},
                {"acme": {"tier": "basic", "routes": ["a", "b"]}}, ROUTES)
    settings = make_settings(tmp_path, redis_url=redis_server.url)
    config = load_config(settings.routes_file, settings.policies_dir)
    trips = RoundTrips(monkeypatch)

    async def go() -> list[bytes]:
        stores = open_stores(settings)
        policy = RateLimitPolicy(stores, fail_closed=True)
        try:
            route, params = config.router.match("GET", "/b/x")
            for i in range(3):
                c = RequestContext(request_id="r", config=config, route=route,
                                   path_params=params, method="GET", path="/b/x", query=b"",
                                   headers=[], client_ip="", started=0.0)
                c.principal = Principal(tenant_id="acme", credential_id="k", kind="api_key")
                if i == 2:
                    trips.sent.clear()
                    with pytest.raises(RateLimited) as refused:
                        await policy.on_request(c)
                    assert refused.value.retry_after >= 1
                    assert c.cleanups == []  # a refused request holds no slot
                else:
                    with contextlib.suppress(RateLimited):
                        await policy.on_request(c)
                    for cleanup in c.cleanups:
                        await cleanup()
            return list(trips.sent)
        finally:
            await stores.aclose()

    assert asyncio.run(go()) == [b"EVALSHA"]
