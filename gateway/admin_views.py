"""What the admin API shows: routes with their upstreams' health, tenants with their
limits and how much of each is used now. Plain JSON-ready dicts; secrets never appear
(an upstream header shows where its secret comes from, `UpstreamHeader.shown`).

Usage is read without charging anything: a charge of cost 0 decides every limit and
writes nothing (gateway/stores/rate_limits.py), so it reports what is left right now.
"""

from __future__ import annotations

from typing import Any

from gateway.config.limits import EffectiveLimits
from gateway.config.runtime import CompiledGroup, RuntimeConfig
from gateway.errors import StoreUnavailable
from gateway.pipeline.token_limit import CURRENCY_MICROS, budget_check
from gateway.stores import Stores
from gateway.stores.rate_limits import (
    Check,
    RateLimitStore,
    limit_check,
    tenant_scope,
    token_scope,
)
from gateway.upstream_health import TargetHealth


def _group(group: CompiledGroup, health: TargetHealth) -> dict[str, Any]:
    now = health.clock()
    targets = []
    for t in group.targets:
        st = health.states.get(t.url)
        targets.append({
            "url": t.url, "weight": t.weight, "usable": health.usable(t.url),
            "circuit": health.circuit_state(t.url),
            "healthy": st.healthy if st is not None else True,
            "parked_seconds": round(max(0.0, st.parked_until - now), 3) if st else 0.0,
            "headers": {h.name: h.shown for h in t.headers},
        })
    return {"name": group.name, "health_check": group.health_check is not None,
            "targets": targets}


def route_views(config: RuntimeConfig, health: TargetHealth) -> list[dict[str, Any]]:
    out = []
    for route in config.routes.values():
        match = route.spec.match
        out.append({
            "name": route.name, "path": match.path, "prefix": match.prefix,
            "methods": sorted(route.methods), "public": route.public,
            "scopes": sorted(route.scopes), "cost": route.cost,
            "llm": route.llm.api if route.llm is not None else None,
            "upstreams": [_group(g, health) for g in route.groups],
        })
    return out


async def _left(store: RateLimitStore, checks: list[Check], scale: int = 1
                ) -> list[dict[str, Any]]:
    if not checks:
        return []
    got = await store.charge(checks, 0)
    return [{"limit": c.amount // scale, "window_seconds": c.window // 1_000_000,
             "remaining": max(0, st.left_now) / scale if scale > 1 else max(0, st.left_now)}
            for c, st in zip(checks, got.limits, strict=True)]


async def _usage(tenant: str, limits: EffectiveLimits, stores: Stores) -> dict[str, Any]:
    rate = [limit_check(i, tenant_scope(tenant)) for i in limits.rate]
    tokens = [limit_check(i, token_scope(tenant)) for i in limits.tokens]
    budget = [budget_check(i, tenant) for i in limits.budget]
    usage: dict[str, Any] = {
        "rate": await _left(stores.rate_limits, rate),
        "in_flight": await stores.rate_limits.count(tenant),
    }
    if stores.tokens is not None:
        usage["tokens"] = await _left(stores.tokens, tokens)
        usage["budget"] = await _left(stores.tokens, budget, CURRENCY_MICROS)
    return usage


async def tenant_views(config: RuntimeConfig, stores: Stores) -> list[dict[str, Any]]:
    """Every tenant of tenants.yaml with its tenant-wide limits and what is left of each."""
    any_route = next(iter(config.routes), "")
    out = []
    for tid, tenant in config.tenants.items():
        limits = config.limits.lookup(tid, any_route)
        view: dict[str, Any] = {
            "id": tid, "name": tenant.name, "tier": tenant.tier, "enabled": tenant.enabled,
            "routes": tenant.routes, "models": tenant.models,
            "limits": {"rate": [str(i) for i in limits.rate],
                       "max_in_flight": limits.max_in_flight,
                       "tokens": [str(i) for i in limits.tokens],
                       "budget": [str(i) for i in limits.budget]},
        }
        try:
            view["usage"] = await _usage(tid, limits, stores)
        except StoreUnavailable as exc:
            view["usage"], view["usage_error"] = None, exc.detail
        out.append(view)
    return out

