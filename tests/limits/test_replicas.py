"""Exactness across replicas: three `gateway serve` processes sharing one real Redis,
which holds the counters, the in-flight slots, the cache and the tenants' API keys."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deployment import Deployment
from tests.limits.conftest import count_slots, fire, wait_until
from tests.processes import GatewayProcess, RedisServer
from tests.servers import Backend

pytestmark = pytest.mark.slow

TIERS = {
    # gcra: a burst of 100, then one unit every 36 s, far longer than the burst takes.
    "hundred": {"rate": "100/hour"},
    "capped": {"max_in_flight": 10},
    "roomy": {"max_in_flight": 5000},
}
TENANTS = {"rate": {"tier": "hundred"}, "cap": {"tier": "capped"},
           "slots": {"tier": "roomy"}, "crash": {"tier": "roomy"}}


class Cluster(Deployment):
    """Three replicas on the deployment's Redis, before one real backend."""

    def __init__(self, workdir: Path, redis: RedisServer, backend: Backend):
        super().__init__(workdir, redis)
        self.backend = backend

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.replicas]

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(GATEWAY_ACCESS_LOG="false", **extra)

    def in_flight(self, tenant: str) -> int:
        assert self.redis is not None
        return asyncio.run(count_slots(self.redis.url, tenant))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("replicas")
    redis = RedisServer(workdir / "redis").start()
    backend = Backend("replicated").start()
    # Keys in the shared Redis before any replica starts: each loads them at startup.
    c = Cluster(workdir, redis, backend).configure({"main": {
        "targets": [{"url": backend.url}], "circuit_breaker": {"failures": 100_000}}}, [
        {"name": "api", "match": {"prefix": "/api"}, "upstream": "main", "rewrite": "/"},
        {"name": "short", "match": {"prefix": "/short"}, "upstream": "main", "rewrite": "/",
         "timeout": {"connect": 1, "total": 0.05}},
        {"name": "cached", "match": {"prefix": "/cached"}, "upstream": "main",
         "rewrite": "/", "cache": {"ttl": 60}},
    ], TIERS, TENANTS)
    try:
        for _ in range(3):
            c.replica()
        yield c
    finally:
        c.stop()
        backend.stop()
        redis.stop()


def test_exactly_the_limit_is_admitted_across_replicas(cluster):
    before = cluster.backend.hits["/x"]
    answers = asyncio.run(fire(cluster.urls, 1000, "/api/x", cluster.as_tenant("rate")))
    codes = Counter(r.status_code for r in answers)
    assert codes == {200: 100, 429: 900}
    assert cluster.backend.hits["/x"] - before == 100
    # Each admitted answer says what its own charge left: 99..0, each once.
    assert sorted(int(r.headers["ratelimit-remaining"]) for r in answers
                  if r.status_code == 200) == list(range(100))
    for r in answers:
        if r.status_code == 429:
            assert 1 <= int(r.headers["retry-after"]) <= 36  # the next unit's refill
            assert r.headers["ratelimit-remaining"] == "0"
            assert r.headers["content-type"] == "application/problem+json"
    # The burst was spread evenly over the three processes.
    answered = Counter(r.url.port for r in answers)
    assert sorted(answered.values()) == [333, 333, 334]


def test_in_flight_cap_is_exact_across_replicas(cluster):
    before = cluster.backend.hits["/slow"]
    answers = asyncio.run(fire(cluster.urls, 100, "/api/slow?delay=2",
                               cluster.as_tenant("cap")))
    assert Counter(r.status_code for r in answers) == {200: 10, 429: 90}
    assert cluster.backend.hits["/slow"] - before == 10
    assert cluster.in_flight("cap") == 0


def test_no_slot_leaks_after_disconnects_and_timeouts(cluster):
    urls = cluster.urls
    h = cluster.as_tenant("slots")

    async def run() -> Counter[str]:
        outcomes: Counter[str] = Counter()
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=300)) as client:
            async def one(i: int) -> None:
                url = urls[i % 3]
                try:
                    if i % 2:  # upstream timeout: 504
                        r = await client.get(url + "/short/slow?delay=1", headers=h, timeout=5)
                        outcomes[str(r.status_code)] += 1
                    else:  # the client hangs up mid-request
                        await client.get(url + "/api/slow?delay=1", headers=h, timeout=0.05)
                except httpx.TimeoutException:
                    outcomes["disconnect"] += 1

            for start in range(0, 1000, 100):
                await asyncio.gather(*(one(i) for i in range(start, start + 100)))
        return outcomes

    assert asyncio.run(run()) == {"504": 500, "disconnect": 500}
    wait_until(lambda: cluster.in_flight("slots") == 0, timeout=5)


def test_crashed_replicas_slots_expire(cluster):
    doomed = GatewayProcess(cluster.env(GATEWAY_INFLIGHT_SLOT_TTL="1"), cluster.workdir)
    doomed.start()
    try:
        def hang() -> None:
            with contextlib.suppress(httpx.HTTPError):  # the replica dies under them
                asyncio.run(fire([doomed.url], 5, "/api/slow?delay=4", cluster.as_tenant("crash")))

        hung = threading.Thread(target=hang, daemon=True)
        hung.start()
        wait_until(lambda: cluster.in_flight("crash") == 5)
        # Refreshed while it lives, even past its 1 s TTL...
        with pytest.raises(AssertionError):
            wait_until(lambda: cluster.in_flight("crash") < 5, timeout=1.5)
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait()
        # ...and gone on their own once the process is.
        wait_until(lambda: cluster.in_flight("crash") == 0, timeout=3)
        hung.join(5)
    finally:
        doomed.stop()


def test_cache_is_shared_by_replicas(cluster):
    first, second = cluster.urls[:2]
    h = cluster.as_tenant("slots")
    a = httpx.post(first + "/cached/c", json={"q": 1, "r": 2}, headers=h)
    b = httpx.post(second + "/cached/c", json={"r": 2, "q": 1}, headers=h)
    assert a.headers["x-cache"] == "MISS" and b.headers["x-cache"] == "HIT"
    assert a.content == b.content


def test_cache_never_crosses_tenants_across_replicas(cluster):
    """The same request by two tenants through different replicas: two entries, each
    tenant served its own answer (the echo carries X-Tenant-ID) and never the other's."""
    first, second, third = cluster.urls
    slots, crash = cluster.as_tenant("slots"), cluster.as_tenant("crash")
    a = httpx.get(first + "/cached/isolated?q=1", headers=slots)
    b = httpx.get(second + "/cached/isolated?q=1", headers=crash)
    assert a.headers["x-cache"] == "MISS" and b.headers["x-cache"] == "MISS"
    assert a.json()["headers"]["x-tenant-id"] == "slots"
    assert b.json()["headers"]["x-tenant-id"] == "crash"
    again_crash = httpx.get(third + "/cached/isolated?q=1", headers=crash)
    again_slots = httpx.get(third + "/cached/isolated?q=1", headers=slots)
    assert again_crash.headers["x-cache"] == again_slots.headers["x-cache"] == "HIT"
    assert again_crash.content == b.content and again_slots.content == a.content
