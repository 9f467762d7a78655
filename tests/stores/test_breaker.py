"""The store breaker: opens after N failures, never waits while open, probes, recovers."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.errors import StoreUnavailable
from gateway.stores.breaker import StoreBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_skips_probes_and_closes():
    async def go() -> None:
        clock = Clock()
        up = {"ok": False}
        calls = {"n": 0, "probes": 0}

        async def op() -> str:
            calls["n"] += 1
            if not up["ok"]:
                raise RedisConnectionError("refused")
            return "done"

        async def probe() -> None:
            calls["probes"] += 1
            if not up["ok"]:
                raise RedisConnectionError("refused")

        b = StoreBreaker("redis", failures=3, cooldown=1.0, max_in_flight=4, probe=probe,
                         clock=clock)
        for _ in range(3):
            with pytest.raises(StoreUnavailable):
                await b.call(op)
        assert b.degraded and calls["n"] == 3
        for _ in range(10):  # open: the store is not touched at all
            with pytest.raises(StoreUnavailable):
                await b.call(op)
        assert calls["n"] == 3 and calls["probes"] == 0
        assert await b.check() == (False, "breaker open: ConnectionError")
        clock.now += 1.5
        with pytest.raises(StoreUnavailable):  # schedules a background probe, still fails fast
            await b.call(op)
        await asyncio.sleep(0)
        assert calls["probes"] == 1 and b.degraded  # probe failed: another cool-down
        up["ok"] = True
        clock.now += 1.5
        with pytest.raises(StoreUnavailable):
            await b.call(op)
        await asyncio.sleep(0)
        assert not b.degraded and b.degraded_seconds_total == pytest.approx(3.0)
        assert await b.call(op) == "done"
        assert await b.check() == (True, "ok")
        await b.aclose()

    asyncio.run(go())


def test_a_success_resets_the_failure_count():
    async def go() -> None:
        results = iter([False, False, True, False, False, True])

        async def op() -> None:
            if not next(results):
                raise OSError("reset")

        b = StoreBreaker("redis", failures=3, cooldown=1.0, max_in_flight=4)
        for _ in range(6):
            with contextlib.suppress(StoreUnavailable):
                await b.call(op)
        assert not b.degraded

    asyncio.run(go())


def test_recovers_without_any_call_once_the_store_answers():
    """No traffic at all after the outage: the breaker probes on its own each cool-down."""
    async def go() -> None:
        up = {"ok": False}
        probes = {"n": 0}

        async def op() -> None:
            if not up["ok"]:
                raise RedisConnectionError("refused")

        async def probe() -> None:
            probes["n"] += 1
            await op()

        b = StoreBreaker("redis", failures=1, cooldown=0.05, max_in_flight=None, probe=probe)
        with pytest.raises(StoreUnavailable):
            await b.call(op)
        assert b.degraded
        await asyncio.sleep(0.2)
        assert b.degraded and probes["n"] >= 2  # one failed probe per cool-down
        up["ok"] = True
        for _ in range(100):
            if not b.degraded:
                break
            await asyncio.sleep(0.01)
        assert not b.degraded
        assert await b.check() == (True, "ok")
        await b.aclose()

    asyncio.run(go())
