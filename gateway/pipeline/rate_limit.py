"""Per-tenant rate limits and in-flight caps, composed from `limits` and the stores.

On Redis with the moving-window strategy (the default), one store round trip before the
upstream: `RedisRateLimitStore.charge` runs charge_limits.lua, which checks every limit
that applies and the in-flight cap and, only if all have room for the route's `cost`,
charges every limit and takes a slot; if any lacks room it charges nothing and says which
refused. The windows keep `limits`' own keys and layout (a `limits` limiter reads them).

Elsewhere (memory stores, or the other two strategies), at most two round trips through
the `limits` limiter, each issued in parallel on Redis:

  1. read the window of every limit that applies (`get_window_stats`) and take an
     in-flight slot; if any limit lacks room for the route's `cost`, or no slot is free,
     refuse with 429 having charged nothing;
  2. charge every limit (`hit`, cost = route cost). `hit` is atomic per limit, so no
     limit is ever exceeded, across any number of replicas. Only if a concurrent request
     took the last unit between 1 and 2 can a refused request have been charged on the
     other limits: it over-charges that tenant slightly, never over-admits.

The slot is released by a ctx cleanup, which runs however the request ends. Answers of a
limited route carry RateLimit-Limit/-Remaining/-Reset (the limit closest to exhaustion)
and RateLimit-Policy; refusals add Retry-After. A store outage raises StoreUnavailable
from the breaker: fail open (serve, unlimited, no headers) or closed (503), by setting.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from limits import RateLimitItem
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.util import WindowStats

from gateway.config.limits import EffectiveLimits
from gateway.config.runtime import CompiledRoute
from gateway.context import RequestContext
from gateway.errors import RateLimited, StoreUnavailable
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse
from gateway.stores import Stores
from gateway.stores.redis import RedisRateLimitStore

STRATEGIES: dict[str, Callable[[Any], RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
}
TOO_MANY = "rate limit of {limit} exceeded"
TOO_MANY_IN_FLIGHT = "more than {limit} requests in flight"

Checks = list[tuple[RateLimitItem, tuple[str, ...]]]  # each limit with its identifiers


async def _all(calls: list[Awaitable[Any]], parallel: bool) -> list[Any]:
    """Await several store calls; errors are returned, not raised, so a slot taken
    alongside a failure is still released. On Redis they run concurrently (one round
    trip of wall time); in memory one after the other, since tasks would cost more
    than the calls themselves."""
    if parallel and len(calls) > 1:
        return list(await asyncio.gather(*calls, return_exceptions=True))
    results: list[Any] = []
    try:
        for call in calls:
            try:
                results.append(await call)
            except StoreUnavailable as exc:
                results.append(exc)
    finally:
        for call in calls[len(results) + 1:]:  # after an unexpected error: never awaited
            call.close()  # type: ignore[attr-defined]
    return results


def _seconds_until(stats: WindowStats, item: RateLimitItem, now: float) -> int:
    """Seconds until the window frees room; a window with nothing used resets in full."""
    if stats.remaining >= item.amount:
        return int(item.get_expiry())
    return max(0, math.ceil(stats.reset_time - now))


class RateLimitPolicy(Policy):
    """Enforces the tenant's limits for the route (see `gateway.config.limits`)."""

    name = "rate_limit"

    def __init__(self, stores: Stores, fail_closed: bool):
        self.stores = stores
        self.limiter = stores.limiter
        self.call = stores.breaker.call
        self.fail_closed = fail_closed
        self.parallel = stores.redis is not None
        self.at_once = stores.rate_limits  # Redis + moving window: the one-call path

    def applies_to(self, route: CompiledRoute) -> bool:
        return not route.public  # nobody to charge

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        if ctx.principal is None:
            return None  # nobody to charge: public routes are not limited
        limits = ctx.config.limits.lookup(ctx.principal.tenant_id, ctx.route.name)
        if limits.unlimited:
            return None
        try:
            await self._enforce(ctx, ctx.principal.tenant_id, limits)
        except StoreUnavailable:
            if self.fail_closed:
                raise
        return None

    async def _enforce(self, ctx: RequestContext, tenant: str, limits: EffectiveLimits
                       ) -> None:
        checks: Checks = [
            *((item, ("t", tenant)) for item in limits.rate),
            *((item, ("r", tenant, ctx.route.name)) for item in limits.route_rate),
        ]
        if self.at_once is not None:
            await self._charge_at_once(self.at_once, ctx, tenant, limits, checks)
        else:
            await self._check_then_hit(ctx, tenant, limits, checks)

    async def _charge_at_once(self, store: RedisRateLimitStore, ctx: RequestContext,
                              tenant: str, limits: EffectiveLimits, checks: Checks) -> None:
        """One round trip: charge_limits.lua charges everything or nothing.

        A call that times out after Redis ran it leaves its slot to nobody: it expires
        after GATEWAY_INFLIGHT_SLOT_TTL, as on the two-step path.
        """
        cap = None if limits.max_in_flight is None else (tenant, limits.max_in_flight)
        got = await self.call(partial(store.charge, checks, limits.cost, cap))
        if got.slot is not None:
            self._hold(ctx, tenant, got.slot)
        if got.cap_full:
            self._headers(ctx, limits, checks, got.stats, 0, got.now)
            raise RateLimited(TOO_MANY_IN_FLIGHT.format(limit=limits.max_in_flight), 1)
        if got.refused is not None:
            self._refuse(ctx, limits, checks, got.stats, checks[got.refused][0],
                         got.stats[got.refused], got.now)
        self._headers(ctx, limits, checks, got.stats, limits.cost, got.now)

    async def _check_then_hit(self, ctx: RequestContext, tenant: str,
                              limits: EffectiveLimits, checks: Checks) -> None:
        """Two round trips through the `limits` limiter (see the module docstring)."""
        lim = self.limiter
        calls: list[Awaitable[Any]] = [
            self.call(partial(lim.get_window_stats, item, *ids)) for item, ids in checks
        ]
        if limits.max_in_flight is not None:
            calls.append(self._acquire(ctx, tenant, limits.max_in_flight))
        results = await _all(calls, self.parallel)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        stats: list[WindowStats] = results[:len(checks)]
        now = time.time()
        cost = limits.cost
        if limits.max_in_flight is not None and results[-1] is None:
            self._headers(ctx, limits, checks, stats, 0, now)
            raise RateLimited(TOO_MANY_IN_FLIGHT.format(limit=limits.max_in_flight), 1)
        for (item, _), st in zip(checks, stats, strict=True):
            if st.remaining < cost:
                self._refuse(ctx, limits, checks, stats, item, st, now)
        hits = await _all([
            self.call(partial(lim.hit, item, *ids, cost=cost)) for item, ids in checks
        ], self.parallel)
        for (item, ids), ok in zip(checks, hits, strict=True):
            if isinstance(ok, BaseException):
                raise ok
            if not ok:  # lost a race for the last units since step 1: read the window again
                st = await self.call(partial(lim.get_window_stats, item, *ids))
                self._refuse(ctx, limits, checks, stats, item, st, time.time())
        self._headers(ctx, limits, checks, stats, cost, now)

    async def _acquire(self, ctx: RequestContext, tenant: str, limit: int) -> str | None:
        stores = self.stores
        slot = await self.call(lambda: stores.inflight.acquire(tenant, limit))
        if slot is not None:
            self._hold(ctx, tenant, slot)
        return slot

    def _hold(self, ctx: RequestContext, tenant: str, slot: str) -> None:
        """Keep the slot alive while the request runs; release it when it ends."""
        stores = self.stores
        stores.live_slots[slot] = tenant

        async def release() -> None:
            stores.live_slots.pop(slot, None)  # stop refreshing it even if Redis is down
            # If the store is down, the slot expires on its own (inflight_slot_ttl).
            with contextlib.suppress(StoreUnavailable):
                await self.call(lambda: stores.inflight.release(tenant, slot))

        ctx.cleanups.append(release)

    def _refuse(self, ctx: RequestContext, limits: EffectiveLimits,
                checks: Checks, stats: list[WindowStats], item: RateLimitItem,
                st: WindowStats, now: float) -> None:
        self._headers(ctx, limits, checks, stats, 0, now, refused=(item, st))
        retry = (int(item.get_expiry()) if limits.cost > item.amount
                 else max(1, math.ceil(st.reset_time - now)))
        raise RateLimited(TOO_MANY.format(limit=item), retry)

    @staticmethod
    def _headers(ctx: RequestContext, limits: EffectiveLimits,
                 checks: Checks, stats: list[WindowStats], charged: int, now: float,
                 refused: tuple[RateLimitItem, WindowStats] | None = None) -> None:
        """RateLimit-* for the limit closest to exhaustion (the refusing one on a 429)."""
        if not checks:
            return
        if refused is not None:
            item, st = refused
            remaining = max(0, st.remaining)
        else:
            i = min(range(len(checks)), key=lambda n: stats[n].remaining - charged)
            item, st = checks[i][0], stats[i]
            remaining = max(0, st.remaining - charged)
        ctx.rate_limit_remaining = remaining
        ctx.response_headers += [
            (b"ratelimit-limit", str(item.amount).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(_seconds_until(st, item, now)).encode()),
            (b"ratelimit-policy", limits.policy_header),
        ]
