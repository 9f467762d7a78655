"""Redis killed mid-run: fail open or closed as set, flat latency, recovery by itself."""

from __future__ import annotations

import time

import pytest

from tests.limits.conftest import wait_until, write_setup


def timed(gw, path: str, **kw) -> tuple[float, object]:
    start = time.perf_counter()
    r = gw.client.get(path, **kw)
    return time.perf_counter() - start, r


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_redis_outage(tmp_path, backend, start_limited, redis_server, mode, as_tenant,
                      tenant_keys):
    routes = [
        {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/"},
        {"name": "cached", "match": {"prefix": "/cached"}, "upstream": "main",
         "rewrite": "/", "cache": {"ttl": 60}},
    ]
    write_setup(tmp_path, backend.url, {"basic": {"rate": "1000/minute", "max_in_flight": 50}},
                {"acme": {"tier": "basic"}}, routes)
    gw = start_limited(redis_url=redis_server.url, store_fail_mode=mode,
                       store_breaker_cooldown=0.2)
    health = gw.app.stores.breaker
    h = as_tenant("acme")
    r = gw.client.get("/api/x", headers=h)
    assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "999"
    assert gw.client.get("/readyz").json()["checks"]["redis"]["ok"] is True
    assert not health.degraded

    redis_server.stop()
    before = backend.hits["/x"]
    latencies, answers = [], []
    for _ in range(40):
        took, r = timed(gw, "/api/x", headers=h)
        latencies.append(took)
        answers.append(r)
    if mode == "open":
        # Served without limits: no counter to report, so no RateLimit headers.
        assert all(r.status_code == 200 for r in answers)
        assert all("ratelimit-limit" not in r.headers for r in answers)
        assert backend.hits["/x"] - before == 40
    else:
        assert all(r.status_code == 503 for r in answers)
        assert all(r.headers["content-type"] == "application/problem+json" for r in answers)
        assert all(int(r.headers["retry-after"]) >= 1 for r in answers)
        assert backend.hits["/x"] == before  # nothing reached the backend
    # Flat latency: a dead Redis is never waited for (a sanity bound, not a benchmark).
    assert max(latencies) < 0.1, latencies
    assert health.degraded
    # The cache never fails a request: a store outage is a BYPASS (after the limits).
    r = gw.client.get("/cached/y", headers=h)
    if mode == "open":
        assert r.status_code == 200 and r.headers["x-cache"] == "BYPASS"
    ready = gw.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
    time.sleep(0.3)
    assert health.degraded_seconds_total >= 0.3

    redis_server.start()  # same port, empty
    # The API keys lived in that Redis too (it saves nothing): restore them as an operator
    # would. Until then the gateway answers 401, which the wait below rides out.
    tenant_keys.write(["acme"], tmp_path / "data", redis_server.url)
    wait_until(lambda: "ratelimit-limit" in gw.client.get("/api/x", headers=h).headers,
               timeout=5)
    assert not health.degraded
    r = gw.client.get("/api/x", headers=h)
    assert r.status_code == 200 and int(r.headers["ratelimit-remaining"]) < 1000
    assert gw.client.get("/readyz").status_code == 200
    total = health.degraded_seconds_total
    time.sleep(0.1)
    assert health.degraded_seconds_total == total  # the counter stops when healthy
