"""Load routes.yaml and policies/ into one validated, compiled `RuntimeConfig`.

    load_config(routes_path, policies_dir) -> RuntimeConfig   # or raises ConfigError

Every problem is a `ConfigError` naming the file, the line and the field; one load
reports all of them (`ConfigError.problems`). The same
function serves start-up, hot reload and `gateway check`, so they can never disagree.
"""

from __future__ import annotations

from pathlib import Path

from gateway.config.limits import LimitsTable, compile_limits
from gateway.config.models import RoutesFile, TenantsFile, TiersFile
from gateway.config.reserved import RESERVED_LIST, shadowed_reserved
from gateway.config.runtime import (
    CompiledGroup,
    ConfigHolder,
    Router,
    RuntimeConfig,
    compile_group,
    compile_models,
    compile_route,
)
from gateway.config.schemas import RouteSchemas, resolve_route_schemas
from gateway.config.secrets import UpstreamHeader, resolve_upstream_headers
from gateway.config.source import LineMap, M, field_error, read_model
from gateway.errors import ConfigError

__all__ = ["ConfigError", "ConfigHolder", "RuntimeConfig", "load_config", "load_routes"]

RESERVED_PATH = ("{path!r} is reserved for the gateway's own endpoints "
                 f"({RESERVED_LIST}): no route can receive it")


ASYNC_PUBLIC = ("a public route cannot run jobs: a job belongs to the tenant that submitted "
                "it (drop `async` or `public`)")


ASYNC_LLM = ("an llm route cannot run jobs: its model choice and token accounting run in "
             "the synchronous pipeline (drop `async` or `llm`)")


def load_routes(path: Path) -> tuple[RoutesFile, LineMap]:
    """Parse and validate routes.yaml, including references between its entries."""
    doc, lines = read_model(path, RoutesFile)
    problems = _reference_problems(path, doc, lines)
    if problems:
        raise ConfigError.of(problems)
    return doc, lines


def _reference_problems(path: Path, doc: RoutesFile, lines: LineMap) -> list[ConfigError]:
    """What pydantic cannot see: names that must be unique, groups that must exist, paths
    that belong to the gateway."""
    problems: list[ConfigError] = []
    seen: set[str] = set()
    for i, route in enumerate(doc.routes):
        if route.name in seen:
            problems.append(field_error(path, lines, ("routes", i, "name"),
                                        f"duplicate route name {route.name!r}"))
        seen.add(route.name)
        taken = shadowed_reserved(route.match.path, route.match.prefix)
        if taken is not None:
            kind = "path" if route.match.path is not None else "prefix"
            problems.append(field_error(path, lines, ("routes", i, "match", kind),
                                        RESERVED_PATH.format(path=taken)))
        if route.async_ is not None and route.public:
            problems.append(field_error(path, lines, ("routes", i, "async"),
                                        ASYNC_PUBLIC))
        if route.async_ is not None and route.llm is not None:
            problems.append(field_error(path, lines, ("routes", i, "async"), ASYNC_LLM))
        refs: list[tuple[tuple[str | int, ...], str]] = []
        if route.upstream is not None:
            refs.append((("routes", i, "upstream"), route.upstream))
        refs += [(("routes", i, "fallbacks", j), n) for j, n in enumerate(route.fallbacks)]
        if route.shadow:
            refs.append((("routes", i, "shadow", "upstream"), route.shadow.upstream))
        if route.cache is not None and route.cache.semantic is not None:
            refs.append((("routes", i, "cache", "semantic", "upstream"),
                         route.cache.semantic.upstream))
        for loc, name in refs:
            if name not in doc.upstreams:
                problems.append(field_error(path, lines, loc,
                                            f"unknown upstream group {name!r}"))
        chain = [route.upstream, *route.fallbacks]
        if len(set(chain)) != len(chain):
            problems.append(field_error(path, lines, ("routes", i, "fallbacks"),
                                        "a group appears twice in the fallback chain"))
        if route.llm is not None and route.llm.api != "models" and not doc.models:
            problems.append(field_error(path, lines, ("routes", i, "llm"),
                                        "an llm route needs models: (none are defined)"))
    for name, model in doc.models.items():
        served = [s.upstream for s in model.serve]
        for j, group in enumerate(served):
            if group not in doc.upstreams:
                problems.append(field_error(path, lines, ("models", name, "serve", j,
                                                          "upstream"),
                                            f"unknown upstream group {group!r}"))
        if len(set(served)) != len(served):
            problems.append(field_error(path, lines, ("models", name, "serve"),
                                        "a group appears twice in the model's serve list"))
    return problems


def _read_noting(path: Path, model: type[M], problems: list[ConfigError]
                 ) -> tuple[M, LineMap] | None:
    """read_model, with a problem noted instead of raised (every file gets checked)."""
    try:
        return read_model(path, model)
    except ConfigError as exc:
        problems.append(exc)
        return None


def _check_tiers(path: Path, route_names: set[str] | None, problems: list[ConfigError]
                 ) -> TiersFile | None:
    read = _read_noting(path, TiersFile, problems)
    if read is None:
        return None
    tiers, lines = read
    for name, tier in tiers.tiers.items():
        for route in tier.routes:
            if route_names is not None and route not in route_names:
                problems.append(field_error(path, lines, ("tiers", name, "routes", route),
                                            f"unknown route {route!r}"))
    return tiers


def _check_tenants(path: Path, route_names: set[str] | None, tiers: TiersFile | None,
                   problems: list[ConfigError], model_names: set[str] | None = None
                   ) -> TenantsFile | None:
    read = _read_noting(path, TenantsFile, problems)
    if read is None:
        return None
    tenants, lines = read
    for tid, tenant in tenants.tenants.items():
        if tiers is not None and tenant.tier is not None and tenant.tier not in tiers.tiers:
            problems.append(field_error(path, lines, ("tenants", tid, "tier"),
                                        f"unknown tier {tenant.tier!r}"))
        if route_names is None:  # routes.yaml did not load: route names cannot be checked
            continue
        for i, model in enumerate(tenant.models):
            if model != "*" and model_names is not None and model not in model_names:
                problems.append(field_error(path, lines, ("tenants", tid, "models", i),
                                            f"unknown model {model!r}"))
        for i, route in enumerate(tenant.routes):
            if route != "*" and route not in route_names:
                problems.append(field_error(path, lines, ("tenants", tid, "routes", i),
                                            f"unknown route {route!r}"))
        for route in tenant.overrides.routes:
            if route not in route_names:
                problems.append(field_error(path, lines,
                                            ("tenants", tid, "overrides", "routes", route),
                                            f"unknown route {route!r}"))
    return tenants


def _check_costs(routes_path: Path, lines: LineMap, doc: RoutesFile, tenants: TenantsFile,
                 limits: LimitsTable) -> None:
    """Refuse a route whose cost exceeds a whole limit of someone who may call it: every
    request would be a 429 whose Retry-After never helps."""
    allowed = {tid: None if "*" in t.routes else set(t.routes)
               for tid, t in tenants.tenants.items() if t.enabled}
    index = {r.name: i for i, r in enumerate(doc.routes)}
    problems, seen = [], set()
    for tid, route, cost, item in limits.unaffordable(allowed):
        if (route, str(item)) in seen:
            continue  # one line per route and limit, not one per tenant of a tier
        seen.add((route, str(item)))
        problems.append(field_error(
            routes_path, lines, ("routes", index[route], "cost"),
            f"cost {cost} exceeds tenant {tid}'s limit of {item}: no request could be "
            "admitted"))
    if problems:
        raise ConfigError.of(problems)


def load_config(routes_path: Path, policies_dir: Path | None = None) -> RuntimeConfig:
    """Load, validate and compile everything; raises one ConfigError naming every problem
    found (each file is checked even when another one failed)."""
    problems: list[ConfigError] = []
    doc: RoutesFile | None = None
    api_schemas: dict[str, RouteSchemas] = {}
    schema_files: tuple[str, ...] = ()
    headers: dict[tuple[str, int], tuple[UpstreamHeader, ...]] = {}
    secret_files: tuple[str, ...] = ()
    try:
        doc, lines = read_model(routes_path, RoutesFile)
        problems += _reference_problems(routes_path, doc, lines)
        api_schemas, schema_files = resolve_route_schemas(doc, routes_path, lines, problems)
        headers, secret_files = resolve_upstream_headers(doc, routes_path, lines, problems)
    except ConfigError as exc:
        problems.append(exc)
    route_names = {r.name for r in doc.routes} if doc is not None else None
    tiers: TiersFile | None = TiersFile()
    tenants: TenantsFile | None = TenantsFile()
    if policies_dir is not None:  # a missing policies file means none defined
        tiers_path, tenants_path = policies_dir / "tiers.yaml", policies_dir / "tenants.yaml"
        if tiers_path.exists():
            tiers = _check_tiers(tiers_path, route_names, problems)
        if tenants_path.exists():
            tenants = _check_tenants(tenants_path, route_names, tiers, problems,
                                     set(doc.models) if doc is not None else None)
    if problems:
        raise ConfigError.of(problems)
    assert doc is not None and tiers is not None and tenants is not None
    groups: dict[str, CompiledGroup] = {
        name: compile_group(name, spec, headers) for name, spec in doc.upstreams.items()
    }
    models = compile_models(doc, groups)
    compiled = [(compile_route(spec, doc, groups, models), spec) for spec in doc.routes]
    limits = compile_limits(tiers.tiers, tenants.tenants, {r.name: r.cost for r in doc.routes})
    _check_costs(routes_path, lines, doc, tenants, limits)
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
        limits=limits,
        api_schemas=api_schemas,
        schema_files=schema_files,
        secret_files=secret_files,
        models=models,
        tenant_models={tid: None if "*" in t.models else frozenset(t.models)
                       for tid, t in tenants.tenants.items()},
    )
