"""Per-tenant rate limits and in-flight caps: one store call before the upstream.

`RateLimitStore.charge` (gateway/stores/rate_limits.py) checks every limit that applies
(tenant-wide and this route's) and the in-flight cap and, only if all have room for the
route's `cost`, charges every limit and takes a slot; if any lacks room it charges
nothing and says which refused. On Redis that is one script call, atomic across
replicas; in memory, one method that never awaits. The strategy is the store's.

The slot is released by a ctx cleanup, which runs however the request ends. Answers of a
limited route carry RateLimit-Limit/-Remaining/-Reset (the limit closest to exhaustion,
as this request's own charge left it) and RateLimit-Policy; refusals add Retry-After.
A store outage raises StoreUnavailable from the store: fail open (serve, unlimited, no
headers) or closed (503), by setting.
"""

from __future__ import annotations

from functools import partial

from gateway.config.limits import EffectiveLimits
from gateway.config.runtime import CompiledRoute
from gateway.context import RequestContext
from gateway.errors import RateLimited, StoreUnavailable
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse
from gateway.stores import Stores
from gateway.stores.rate_limits import (
    MICROS,
    Charge,
    Check,
    LimitState,
    limit_check,
    route_scope,
    tenant_scope,
)

TOO_MANY = "rate limit of {limit} exceeded"
TOO_MANY_IN_FLIGHT = "more than {limit} requests in flight"
# (limits, checks, in-flight cap, each check's RateLimit-Limit value): built once
Plan = tuple[EffectiveLimits, tuple[Check, ...], tuple[str, int] | None, tuple[bytes, ...]]


def _seconds(micros: int) -> int:
    return -(-micros // MICROS)


def plan_for(tenant: str, route: str, limits: EffectiveLimits) -> Plan:
    """The checks and the cap of one (tenant, route): tenant-wide limits count under the
    tenant, route limits under the tenant and the route (keys built once, see below)."""
    checks = (*(limit_check(item, tenant_scope(tenant)) for item in limits.rate),
              *(limit_check(item, route_scope(tenant, route)) for item in limits.route_rate))
    cap = None if limits.max_in_flight is None else (tenant, limits.max_in_flight)
    return limits, checks, cap, tuple(str(check.amount).encode() for check in checks)


class RateLimitPolicy(Policy):
    """Enforces the tenant's limits for the route (see `gateway.config.limits`)."""

    name = "rate_limit"

    def __init__(self, stores: Stores, fail_closed: bool):
        self.stores = stores
        self.store = stores.rate_limits
        self.fail_closed = fail_closed
        # A store whose slots live in this process frees one without waiting, and has
        # none to keep alive: its release is the whole cleanup (see `_hold`).
        self._release_now = getattr(self.store, "release_now", None)
        # (tenant, route) -> plan (None: unlimited) of one config generation, started
        # over at a reload; bounded by the tenants and routes in the config.
        self._plans: dict[tuple[str, str], Plan | None] = {}
        self._plans_of: object = None  # the config they were made from

    def applies_to(self, route: CompiledRoute) -> bool:
        return not route.public  # nobody to charge

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        if ctx.principal is None:
            return None  # nobody to charge: public routes are not limited
        tenant, route = ctx.principal.tenant_id, ctx.route.name
        config = ctx.config
        if config is not self._plans_of:
            self._plans, self._plans_of = {}, config
        try:
            plan = self._plans[(tenant, route)]
        except KeyError:
            effective = config.limits.lookup(tenant, route)
            plan = self._plans[(tenant, route)] = (
                None if effective.unlimited else plan_for(tenant, route, effective))
        if plan is None:
            return None
        limits, checks, cap, amounts = plan
        try:
            got = await self.store.charge(checks, limits.cost, cap)
        except StoreUnavailable:
            if self.fail_closed:
                raise
            return None
        if got.slot is not None:
            self._hold(ctx, tenant, got.slot)
        if got.verdict < 0:
            self._headers(ctx, limits, amounts, got, admitted=False)
            raise RateLimited(TOO_MANY_IN_FLIGHT.format(limit=limits.max_in_flight), 1)
        if got.verdict > 0:
            # Every limit was decided: answer with the one that frees last, or a client
            # honouring Retry-After comes back while another limit still refuses it.
            found = got.limits
            i = max(range(len(found)), key=lambda n: found[n].retry)
            self._headers(ctx, limits, amounts, got, admitted=False, refused=i)
            item = (*limits.rate, *limits.route_rate)[i]
            raise RateLimited(TOO_MANY.format(limit=item),
                              max(1, _seconds(got.limits[i].retry)))
        self._headers(ctx, limits, amounts, got, admitted=True)
        return None

    def _hold(self, ctx: RequestContext, tenant: str, slot: str) -> None:
        """Keep the slot alive while the request runs; release it when it ends."""
        if self._release_now is not None:
            ctx.cleanups.append(partial(self._release_now, tenant, slot))
            return
        stores, store = self.stores, self.store
        stores.live_slots[slot] = tenant

        async def release() -> None:
            stores.live_slots.pop(slot, None)  # stop refreshing it even if Redis is down
            try:  # noqa: SIM105 (suppress: three calls more per request)
                await store.release(tenant, slot)
            except StoreUnavailable:
                pass  # the slot expires on its own (inflight_slot_ttl)

        ctx.cleanups.append(release)

    @staticmethod
    def _headers(ctx: RequestContext, limits: EffectiveLimits, amounts: tuple[bytes, ...],
                 got: Charge, admitted: bool, refused: int | None = None) -> None:
        """RateLimit-* for the limit closest to exhaustion (the refusing one on a 429):
        what this request's charge left (admitted) or found (refused)."""
        found = got.limits
        if not found:
            return
        if refused is None and len(found) == 1:
            refused = 0
        elif refused is None:
            refused = min(range(len(found)),
                          key=lambda n: found[n].left if admitted else found[n].left_now)
        st: LimitState = found[refused]
        left, reset = (st.left, st.reset) if admitted else (st.left_now, st.reset_now)
        ctx.rate_limit_remaining = left = max(0, left)
        ctx.response_headers += [
            (b"ratelimit-limit", amounts[refused]),
            (b"ratelimit-remaining", str(left).encode()),
            (b"ratelimit-reset", str(_seconds(reset)).encode()),
            (b"ratelimit-policy", limits.policy_header),
        ]
