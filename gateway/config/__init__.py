"""Load routes.yaml and policies/ into one validated, compiled `RuntimeConfig`.

    load_config(routes_path, policies_dir) -> RuntimeConfig   # or raises ConfigError

Every problem is a `ConfigError` naming the file, the line and the field. The same
function serves start-up, hot reload and `gateway check`, so they can never disagree.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.limits import compile_limits
from gateway.config.models import RoutesFile, TenantsFile, TiersFile
from gateway.config.reserved import shadowed_reserved
from gateway.config.runtime import (
    CompiledGroup,
    ConfigHolder,
    Router,
    RuntimeConfig,
    compile_group,
    compile_route,
)
from gateway.config.source import LineMap, field_error, read_model
from gateway.errors import ConfigError

__all__ = ["ConfigError", "ConfigHolder", "RuntimeConfig", "load_config", "load_routes"]

RESERVED_PATH = ("{path!r} is reserved for the gateway's own endpoints "
                 "(/healthz, /readyz, /metrics, /oauth/..., /.well-known/...): "
                 "no route can receive it")


def load_routes(path: Path) -> tuple[RoutesFile, LineMap]:
    """Parse and validate routes.yaml, including references between its entries."""
    doc, lines = read_model(path, RoutesFile)
    seen: set[str] = set()
    for i, route in enumerate(doc.routes):
        if route.name in seen:
            raise field_error(path, lines, ("routes", i, "name"),
                              f"duplicate route name {route.name!r}")
        seen.add(route.name)
        taken = shadowed_reserved(route.match.path, route.match.prefix)
        if taken is not None:
            kind = "path" if route.match.path is not None else "prefix"
            raise field_error(path, lines, ("routes", i, "match", kind),
                              RESERVED_PATH.format(path=taken))
        refs: list[tuple[tuple[str | int, ...], str]] = [
            (("routes", i, "upstream"), route.upstream)
        ]
        refs += [(("routes", i, "fallbacks", j), n) for j, n in enumerate(route.fallbacks)]
        if route.shadow:
            refs.append((("routes", i, "shadow", "upstream"), route.shadow.upstream))
        for loc, name in refs:
            if name not in doc.upstreams:
                raise field_error(path, lines, loc, f"unknown upstream group {name!r}")
        chain = [route.upstream, *route.fallbacks]
        if len(set(chain)) != len(chain):
            raise field_error(path, lines, ("routes", i, "fallbacks"),
                              "a group appears twice in the fallback chain")
    return doc, lines


def _load_policies(policies_dir: Path | None, route_names: set[str]
                   ) -> tuple[TiersFile, TenantsFile]:
    """policies/tiers.yaml and policies/tenants.yaml; a missing file means none defined."""
    tiers, tenants = TiersFile(), TenantsFile()
    if policies_dir is None:
        return tiers, tenants
    tiers_path, tenants_path = policies_dir / "tiers.yaml", policies_dir / "tenants.yaml"
    if tiers_path.exists():
        tiers, lines = read_model(tiers_path, TiersFile)
        for name, tier in tiers.tiers.items():
            for route in tier.routes:
                if route not in route_names:
                    raise field_error(tiers_path, lines, ("tiers", name, "routes", route),
                                      f"unknown route {route!r}")
    if tenants_path.exists():
        tenants, lines = read_model(tenants_path, TenantsFile)
        for tid, tenant in tenants.tenants.items():
            if tenant.tier is not None and tenant.tier not in tiers.tiers:
                raise field_error(tenants_path, lines, ("tenants", tid, "tier"),
                                  f"unknown tier {tenant.tier!r}")
            for i, route in enumerate(tenant.routes):
                if route != "*" and route not in route_names:
                    raise field_error(tenants_path, lines, ("tenants", tid, "routes", i),
                                      f"unknown route {route!r}")
            for route in tenant.overrides.routes:
                if route not in route_names:
                    raise field_error(tenants_path, lines,
                                      ("tenants", tid, "overrides", "routes", route),
                                      f"unknown route {route!r}")
    return tiers, tenants


def load_config(routes_path: Path, policies_dir: Path | None = None) -> RuntimeConfig:
    """Load, validate and compile everything; raises ConfigError on the first problem."""
    doc, _ = load_routes(routes_path)
    tiers, tenants = _load_policies(policies_dir, {r.name for r in doc.routes})
    groups: dict[str, CompiledGroup] = {
        name: compile_group(name, spec) for name, spec in doc.upstreams.items()
    }
    compiled = [(compile_route(spec, doc, groups), spec) for spec in doc.routes]
    sources = [str(routes_path)]
    if policies_dir is not None and policies_dir.is_dir():
        sources += sorted(str(p) for p in policies_dir.glob("*.yaml"))
    return RuntimeConfig(
        router=Router(compiled),
        routes={c.name: c for c, _ in compiled},
        groups=groups,
        tiers=tiers.tiers,
        tenants=tenants.tenants,
        sources=tuple(sources),
        limits=compile_limits(tiers.tiers, tenants.tenants, {r.name: r.cost for r in doc.routes}),
    )
