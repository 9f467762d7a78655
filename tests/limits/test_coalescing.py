"""Request coalescing on Redis: identical concurrent misses reach the upstream once per
process, however the lookups and the leader's cache write interleave."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.deployment import Deployment
from tests.servers import Backend

pytestmark = pytest.mark.slow

RUNS, BURST = 20, 200


def test_identical_misses_make_one_upstream_call_per_process(tmp_path, backend: Backend,
                                                             redis_server):
    deployment = Deployment(tmp_path, redis_server).configure(
        {"main": {"targets": [{"url": backend.url}]}},
        [{"name": "c", "match": {"prefix": "/c"}, "upstream": "main", "rewrite": "/",
          "cache": {"ttl": 60}}],
        {"roomy": {"rate": "100000/minute"}}, {"acme": {"tier": "roomy"}})
    gateway = deployment.replica(GATEWAY_ACCESS_LOG="false")
    headers = deployment.as_tenant("acme")

    async def burst(path: str) -> list[httpx.Response]:
        # Fresh connections each burst: an idle kept-alive one may be closed by the
        # server just as it is reused (a loaded machine stretches a burst past 5 s).
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:
            return list(await asyncio.gather(*(
                client.get(gateway.url + path, headers=headers) for _ in range(BURST))))

    async def runs() -> list[tuple[int, Counter[str]]]:
        results = []
        for run in range(RUNS):
            path = f"/c/run-{run}"  # a new key: every request of the burst misses
            answers = await burst(path)
            assert all(r.status_code == 200 for r in answers)
            results.append((backend.hits[f"/run-{run}"],
                            Counter(r.headers["x-cache"] for r in answers)))
        return results

    try:
        results = asyncio.run(runs())
    finally:
        deployment.stop()
    assert [calls for calls, _ in results] == [1] * RUNS, results
    assert all(seen == {"MISS": 1, "HIT": BURST - 1} for _, seen in results), results
