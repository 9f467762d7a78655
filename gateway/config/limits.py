"""Which limits apply to a (tenant, route): the one precedence rule, compiled at load time.

    effective_limits(tenant, tier, default, route) -> EffectiveLimits

Precedence, field by field (`rate`, `max_in_flight`, `tokens`, `budget`,
`max_queued_jobs`, and the per-route `routes[name]`):

    tenant override  >  the tenant's tier  >  the `default` tier  (the global fallback)

routes.yaml holds no limits of its own, only each route's `cost` (units charged per
request against every limit that applies). A tenant with no tier, a principal whose
tenant is not in tenants.yaml, and a tier that leaves a field unset all fall through to
the tier named `default` in tiers.yaml; where that is absent too, the field is unlimited.
Requests without a principal (public routes) are never limited: there is no tenant to
charge (see docs/rate-limits.md).

`compile_limits` runs once per config load and precomputes the answer for every known
tenant and route, so a request only looks its entry up: no parsing on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

from limits import RateLimitItem, parse_many

from gateway.config.models import Limits, Tenant, Tier

DEFAULT_TIER = "default"


@dataclass(frozen=True, slots=True)
class EffectiveLimits:
    """The limits one tenant has on one route, with the route's cost per request."""

    rate: tuple[RateLimitItem, ...]  # tenant-wide: shared by every route it calls
    route_rate: tuple[RateLimitItem, ...]  # this route only
    max_in_flight: int | None
    cost: int
    max_queued_jobs: int | None = None  # tenant-wide: jobs queued or running (docs/jobs.md)
    # The RateLimit-Policy header value (draft-ietf-httpapi-ratelimit-headers), precomputed.
    policy_header: bytes = b""
    tokens: tuple[RateLimitItem, ...] = ()  # LLM tokens, tenant-wide (docs/llm.md)
    budget: tuple[RateLimitItem, ...] = ()  # currency units, tenant-wide (docs/llm.md)

    @property
    def limited(self) -> bool:
        """Whether this route's answers carry RateLimit-* headers for this tenant."""
        return bool(self.rate or self.route_rate)

    @property
    def unlimited(self) -> bool:
        return not self.limited and self.max_in_flight is None


UNLIMITED = EffectiveLimits(rate=(), route_rate=(), max_in_flight=None, cost=1)


def _first(*values: str | int | None) -> str | int | None:
    return next((v for v in values if v is not None), None)


def effective_limits(tenant: Tenant | None, tier: Tier | None, default: Tier | None,
                     route: str, cost: int) -> EffectiveLimits:
    """Combine tenant override > tier > `default` tier for one route (see module doc)."""
    layers: list[Limits] = [x for x in (tenant.overrides if tenant else None, tier, default)
                            if x is not None]
    rate = _first(*(layer.rate for layer in layers))
    route_rate = _first(*(layer.routes.get(route) for layer in layers))
    max_in_flight = _first(*(layer.max_in_flight for layer in layers))
    tokens = _first(*(layer.tokens for layer in layers))
    budget = _first(*(layer.budget for layer in layers))
    max_queued = _first(*(layer.max_queued_jobs for layer in layers))
    rate_items = tuple(parse_many(str(rate))) if rate is not None else ()
    route_items = tuple(parse_many(str(route_rate))) if route_rate is not None else ()
    policy = ", ".join(f"{i.amount};w={i.get_expiry()}" for i in (*rate_items, *route_items))
    return EffectiveLimits(
        rate=rate_items, route_rate=route_items,
        max_in_flight=int(max_in_flight) if max_in_flight is not None else None,
        cost=cost, policy_header=policy.encode(),
        tokens=tuple(parse_many(str(tokens))) if tokens is not None else (),
        budget=tuple(parse_many(str(budget))) if budget is not None else (),
        max_queued_jobs=int(max_queued) if max_queued is not None else None,
    )


class LimitsTable:
    """Precomputed `EffectiveLimits` per (tenant, route) for one config generation."""

    def __init__(self, table: dict[tuple[str, str], EffectiveLimits],
                 fallback: dict[str, EffectiveLimits]):
        self._table = table
        self._fallback = fallback  # tenants not in tenants.yaml, by route

    def lookup(self, tenant_id: str | None, route: str) -> EffectiveLimits:
        """The limits for this request; UNLIMITED without a tenant."""
        if tenant_id is None:
            return UNLIMITED
        found = self._table.get((tenant_id, route))
        if found is not None:
            return found
        return self._fallback.get(route, UNLIMITED)

    def unaffordable(self, allowed: dict[str, set[str] | None]
                     ) -> list[tuple[str, str, int, RateLimitItem]]:
        """(tenant, route, cost, limit) wherever a route's cost exceeds a whole limit: no
        request of that route could ever be admitted. `allowed`: the routes each enabled
        tenant may call (None: all); no other tenant is admitted, so none other counts."""
        found = []
        for (tid, route), eff in self._table.items():
            if tid not in allowed:
                continue
            routes = allowed[tid]
            if routes is not None and route not in routes:
                continue
            for item in (*eff.rate, *eff.route_rate):
                if eff.cost > item.amount:
                    found.append((tid, route, eff.cost, item))
                    break
        return found


def compile_limits(tiers: dict[str, Tier], tenants: dict[str, Tenant],
                   route_costs: dict[str, int]) -> LimitsTable:
    """Resolve every known tenant and route once (limits strings were validated already)."""
    default = tiers.get(DEFAULT_TIER)
    # Parse each distinct combination once: many tenants share a tier.
    memo: dict[tuple[object, ...], EffectiveLimits] = {}

    def resolve(tenant: Tenant | None, tier: Tier | None, route: str, cost: int
                ) -> EffectiveLimits:
        # Models with dict fields are not hashable; identity is enough within one load.
        key = (id(tenant.overrides) if tenant else None, id(tier), route, cost)
        if key not in memo:
            memo[key] = effective_limits(tenant, tier, default, route, cost)
        return memo[key]

    table = {
        (tid, route): resolve(tenant, tiers.get(tenant.tier) if tenant.tier else None,
                              route, cost)
        for tid, tenant in tenants.items()
        for route, cost in route_costs.items()
    }
    fallback = {route: resolve(None, None, route, cost) for route, cost in route_costs.items()}
    return LimitsTable(table, fallback)


EMPTY_LIMITS = LimitsTable({}, {})
