"""The response cache through a real gateway: hit, miss, bypass, TTL, scoping, coalescing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.limits.conftest import write_setup


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "memory":
        return {}
    return {"redis_url": request.getfixturevalue("redis_server").url}


def cached_routes(**cache: Any) -> list[dict[str, Any]]:
    return [
        {"name": "cached", "match": {"prefix": "/c"}, "upstream": "main", "rewrite": "/",
         "cache": {"ttl": 60, **cache}},
        {"name": "shared", "match": {"prefix": "/s"}, "upstream": "main", "rewrite": "/",
         "cache": {"ttl": 60, "shared": True}},
        {"name": "open", "match": {"prefix": "/o"}, "upstream": "main", "rewrite": "/",
         "public": True, "cache": {"ttl": 60}},
    ]


@pytest.fixture
def gw(tmp_path, upstream, start_limited, store):
    write_setup(tmp_path, upstream.url, {"basic": {"rate": "100/minute"}},
                {"acme": {"tier": "basic"}, "beta": {"tier": "basic"}},
                cached_routes(vary=["Accept-Language"], ttl=0.5))
    return start_limited(**store)


@pytest.fixture
def post(gw, as_tenant) -> Callable[..., httpx.Response]:
    """post(path, body, tenant="acme", **headers): a JSON POST with the tenant's key."""

    def send(path: str, body: Any, tenant: str = "acme", **headers: str) -> httpx.Response:
        return gw.client.post(path, json=body, headers={**as_tenant(tenant), **headers})

    return send


def test_miss_then_hit_with_equal_json_and_rate_headers(gw, post, upstream, as_tenant):
    before = upstream.hits
    a = post("/c/p", {"text": "hi", "n": 1})
    b = gw.client.post("/c/p", content=b'{ "n": 1,\n "text": "hi" }',
                       headers={**as_tenant("acme"), "Content-Type": "application/json"})
    assert a.status_code == b.status_code == 200
    assert (a.headers["x-cache"], b.headers["x-cache"]) == ("MISS", "HIT")
    assert a.content == b.content and a.headers["x-hit"] == b.headers["x-hit"]
    assert upstream.hits - before == 1
    assert b.headers["age"] == "0" and "age" not in a.headers
    # A hit is a counted request and carries the limit headers like any other answer.
    assert int(a.headers["ratelimit-remaining"]) - int(b.headers["ratelimit-remaining"]) == 1
    assert b.headers["x-request-id"] != a.headers["x-request-id"]
    # Anything else that differs is another entry: body, path, query, method, vary.
    for r in (post("/c/p", {"text": "hi", "n": 2}), post("/c/q", {"text": "hi", "n": 1}),
              gw.client.post("/c/p?x=1", json={"text": "hi", "n": 1}, headers=as_tenant("acme")),
              gw.client.get("/c/p", headers=as_tenant("acme")),
              post("/c/p", {"text": "hi", "n": 1}, **{"Accept-Language": "fr"})):
        assert r.headers["x-cache"] == "MISS"


def test_bypass_skips_lookup_but_stores(post):
    post("/c/b", {"q": 1})
    r = post("/c/b", {"q": 1}, **{"Cache-Control": "no-cache"})
    assert r.headers["x-cache"] == "BYPASS"
    again = post("/c/b", {"q": 1})
    assert again.headers["x-cache"] == "HIT" and again.headers["x-hit"] == r.headers["x-hit"]
    # no-store from the client: neither looked up nor stored.
    r = post("/c/b2", {"q": 1}, **{"Cache-Control": "no-store"})
    assert r.headers["x-cache"] == "BYPASS"
    assert post("/c/b2", {"q": 1}).headers["x-cache"] == "MISS"


def test_ttl_expiry(post):
    assert post("/c/t", {"q": 1}).headers["x-cache"] == "MISS"
    assert post("/c/t", {"q": 1}).headers["x-cache"] == "HIT"
    time.sleep(0.6)
    assert post("/c/t", {"q": 1}).headers["x-cache"] == "MISS"


@pytest.mark.parametrize("query", ["cc=no-store", "cc=private", "cc=no-cache", "cc=max-age=0",
                                   "status=404", "status=500"])
def test_unstorable_answers_are_not_stored(post, upstream, query):
    before = upstream.hits
    first = post(f"/c/u?{query}", {"q": 1})
    second = post(f"/c/u?{query}", {"q": 1})
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "MISS")
    assert upstream.hits - before == 2


def test_tenants_never_share_unless_the_route_is_shared(gw, post, upstream):
    a = post("/c/same", {"q": 1}, tenant="acme")
    b = post("/c/same", {"q": 1}, tenant="beta")
    assert (a.headers["x-cache"], b.headers["x-cache"]) == ("MISS", "MISS")
    assert a.headers["x-hit"] != b.headers["x-hit"]
    # Without a key a private route answers 401: never a tenant's cached entry.
    anonymous = gw.client.post("/c/same", json={"q": 1})
    assert anonymous.status_code == 401 and "x-cache" not in anonymous.headers
    # A public route has no principal: one anonymous scope, whoever calls, key or not.
    codes = [gw.client.post("/o/same", json={"q": 1}).headers["x-cache"],
             post("/o/same", {"q": 1}, tenant="acme").headers["x-cache"],
             post("/o/same", {"q": 1}, tenant="beta").headers["x-cache"]]
    assert codes == ["MISS", "HIT", "HIT"]
    a = post("/s/same", {"q": 1}, tenant="acme")
    b = post("/s/same", {"q": 1}, tenant="beta")
    assert (a.headers["x-cache"], b.headers["x-cache"]) == ("MISS", "HIT")


def test_identical_concurrent_misses_make_one_upstream_call(gw, upstream, as_tenant):
    before = upstream.hits

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10,
                                     limits=httpx.Limits(max_connections=100)) as client:
            return list(await asyncio.gather(*(
                client.post("/c/slow?delay=0.5", json={"q": "same"}, headers=as_tenant("acme"))
                for _ in range(100))))

    answers = asyncio.run(burst())
    assert upstream.hits - before == 1
    assert all(r.status_code == 200 for r in answers)
    assert len({r.content for r in answers}) == 1
    assert Counter(r.headers["x-cache"] for r in answers) == {"MISS": 1, "HIT": 99}


def test_streamed_and_oversized_answers_are_not_stored(tmp_path, backend, start_limited,
                                                       as_tenant):
    write_setup(tmp_path, backend.url, {}, {"acme": {}}, cached_routes())
    gw = start_limited(cache_max_entry_bytes=100)
    h = as_tenant("acme")
    for path in ("/c/sse?n=2&gap=0.01", "/c/echo-long-enough-to-exceed-one-hundred-bytes"):
        codes = [gw.client.get(path, headers=h).headers["x-cache"] for _ in range(2)]
        assert codes == ["MISS", "MISS"], path
    assert [gw.client.get("/c/sse?n=2&gap=0.01", headers=h).status_code] == [200]
