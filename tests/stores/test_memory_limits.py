"""The memory rate-limit storage: limits' MemoryStorage with its expiry sweep throttled."""

from __future__ import annotations

import asyncio
from typing import Any

from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from gateway.stores import open_stores
from gateway.stores.memory import MemoryLimitsStorage
from tests.conftest import make_settings


def test_the_hook_exists_in_limits():
    # The throttle overrides limits' private sweep scheduler; if a limits release renames
    # it, the override would silently stop working.
    assert callable(getattr(MemoryStorage, "_MemoryStorage__schedule_expiry", None))


def test_hits_do_not_each_wait_on_a_thread(tmp_path, monkeypatch):
    hops = 0
    to_thread = asyncio.to_thread

    async def counted(fn: Any, *args: Any) -> Any:
        nonlocal hops
        hops += 1
        return await to_thread(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    item = parse("1000/minute")

    async def go() -> None:
        stores = open_stores(make_settings(tmp_path))  # what the gateway runs on, no Redis
        assert isinstance(stores.limiter.storage, MemoryLimitsStorage)
        for _ in range(200):  # well under a second
            await stores.limiter.get_window_stats(item, "t", "acme")
            assert await stores.limiter.hit(item, "t", "acme")
            await asyncio.sleep(0)  # a request boundary: let a scheduled sweep run
        assert (await stores.limiter.get_window_stats(item, "t", "acme")).remaining == 800

    asyncio.run(go())
    assert hops <= 2  # limits 5.8 alone: one sweep, one thread hop, per hit (~200)


def test_expired_entries_are_still_swept():
    item = parse("3 per 1 second")

    async def go() -> None:
        storage = MemoryLimitsStorage()
        limiter = MovingWindowRateLimiter(storage)
        key = item.key_for("t", "acme")
        assert all([await limiter.hit(item, "t", "acme") for _ in range(3)])
        assert not await limiter.hit(item, "t", "acme")
        assert len(storage.events[key]) == 3
        await asyncio.sleep(1.05)  # the window and the sweep interval pass
        assert await limiter.hit(item, "t", "acme")  # starts a sweep
        await asyncio.sleep(0.05)
        assert len(storage.events[key]) == 1  # the three expired entries are gone

    asyncio.run(go())
