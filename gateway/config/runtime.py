"""The compiled config requests read: route matchers, weight tables, resolved references.

`compile_group` and `compile_route` run once per load (`gateway.config.load_config`).
A `RuntimeConfig` is immutable once built and is swapped whole through
`ConfigHolder.current`; each request reads it once, so no request ever mixes two configs.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.limits import EMPTY_LIMITS, LimitsTable
from gateway.config.models import (
    IDEMPOTENT_METHODS,
    CircuitBreaker,
    HealthCheck,
    LlmRoute,
    Route,
    RoutesFile,
    Tenant,
    Tier,
)
from gateway.config.schemas import RouteSchemas
from gateway.config.secrets import UpstreamHeader
from gateway.errors import MethodNotAllowed, NotFound


@dataclass(frozen=True, slots=True)
class CompiledTarget:
    """One upstream server: its base URL without a trailing slash, and the headers the
    gateway adds to every request to it (secrets among them are `Redacted`)."""

    url: str
    weight: int
    headers: tuple[UpstreamHeader, ...] = ()
    header_names: frozenset[str] = frozenset()  # lower-case: the client's are dropped


@dataclass(frozen=True, slots=True)
class CompiledGroup:
    """A named upstream group with its cumulative weight table for O(log n) picks."""

    name: str
    targets: tuple[CompiledTarget, ...]
    cumulative: tuple[int, ...]
    health_check: HealthCheck | None
    breaker: CircuitBreaker


@dataclass(frozen=True, slots=True)
class RetryPlan:
    attempts: int
    backoff: float
    max_backoff: float
    on_status: frozenset[int]
    methods: frozenset[str]


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A model clients may name: the groups serving it in order, each with the name it
    has there, and its price (currency units per token, prompt and completion)."""

    name: str
    chain: tuple[tuple[CompiledGroup, str], ...]
    prompt_price: float
    completion_price: float
    owned_by: str


@dataclass(frozen=True, slots=True)
class CompiledRoute:
    """Everything a request on this route needs, resolved at load time."""

    name: str
    methods: frozenset[str]
    groups: tuple[CompiledGroup, ...]  # primary first, then the fallback chain in order
    shadow: CompiledGroup | None
    shadow_percent: float
    connect_timeout: float
    total_timeout: float
    retry: RetryPlan
    max_body_bytes: int
    public: bool
    scopes: frozenset[str]
    cost: int
    spec: Route  # the validated source entry, for policies that read their own section
    prefix: str | None = None
    rewrite: str | None = None
    template: str | None = None  # rewrite with {params}
    llm: LlmRoute | None = None  # an OpenAI-compatible route (docs/llm.md)

    @property
    def replays_body(self) -> bool:
        """Whether the body must be held in memory: retries, fallbacks, shadow, cache, or
        an llm route (which reads the model from it), or a job (whose body is stored on
        the queue)."""
        return bool(
            self.retry.attempts or len(self.groups) > 1 or self.shadow or self.spec.cache
            or self.llm or self.spec.async_
        )

    def upstream_path(self, path: str, params: dict[str, str]) -> str:
        if self.prefix is not None:
            rest = path[len(self.prefix):]
            base = self.rewrite if self.rewrite is not None else self.prefix
            if base.endswith("/") and rest.startswith("/"):
                rest = rest[1:]
            return base + rest
        if self.template is not None:
            return self.template.format_map(params)
        return self.rewrite if self.rewrite is not None else path


_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _template_regex(path: str) -> re.Pattern[str]:
    out, pos = "", 0
    for m in _PARAM.finditer(path):
        out += re.escape(path[pos:m.start()]) + f"(?P<{m.group(1)}>[^/]+)"
        pos = m.end()
    return re.compile(out + re.escape(path[pos:]) + r"\Z")


class Router:
    """Matches (method, path) to a route: exact paths, then templates, then longest prefix."""

    def __init__(self, routes: list[tuple[CompiledRoute, Route]]):
        self._exact: dict[str, list[CompiledRoute]] = {}
        self._templates: list[tuple[re.Pattern[str], CompiledRoute]] = []
        prefixes: list[tuple[str, CompiledRoute]] = []
        for compiled, spec in routes:
            if spec.match.prefix is not None:
                prefixes.append((spec.match.prefix, compiled))
            elif "{" in (spec.match.path or ""):
                self._templates.append((_template_regex(spec.match.path or ""), compiled))
            else:
                self._exact.setdefault(spec.match.path or "", []).append(compiled)
        self._prefixes = sorted(prefixes, key=lambda p: -len(p[0]))

    def match(self, method: str, path: str) -> tuple[CompiledRoute, dict[str, str]]:
        """The route for this request, or NotFound / MethodNotAllowed."""
        allowed: list[str] = []
        for route in self._exact.get(path, ()):
            if method in route.methods:
                return route, {}
            allowed.extend(route.methods)
        for regex, route in self._templates:
            m = regex.match(path)
            if m:
                if method in route.methods:
                    return route, m.groupdict()
                allowed.extend(route.methods)
        for prefix, route in self._prefixes:
            if path.startswith(prefix) and (
                prefix.endswith("/") or len(path) == len(prefix) or path[len(prefix)] == "/"
            ):
                if method in route.methods:
                    return route, {}
                allowed.extend(route.methods)
        if allowed:
            raise MethodNotAllowed(sorted(set(allowed)))
        raise NotFound(NotFound.NO_ROUTE.format(path=path))


def compile_group(name: str, spec: Any,
                  headers: Mapping[tuple[str, int], tuple[UpstreamHeader, ...]] | None = None
                  ) -> CompiledGroup:
    found = headers or {}
    targets = tuple(
        CompiledTarget(str(t.url).rstrip("/"), t.weight, found.get((name, i), ()),
                       frozenset(h.name.lower() for h in found.get((name, i), ())))
        for i, t in enumerate(spec.targets)
    )
    return CompiledGroup(
        name=name,
        targets=targets,
        cumulative=tuple(itertools.accumulate(t.weight for t in targets)),
        health_check=spec.health_check,
        breaker=spec.circuit_breaker,
    )


def compile_models(doc: RoutesFile, groups: dict[str, CompiledGroup]
                   ) -> dict[str, CompiledModel]:
    return {
        name: CompiledModel(
            name=name,
            chain=tuple((groups[s.upstream], s.model or name) for s in spec.serve),
            prompt_price=spec.price.prompt / 1e6,
            completion_price=spec.price.completion / 1e6,
            owned_by=spec.owned_by,
        )
        for name, spec in doc.models.items()
    }


def compile_route(spec: Route, doc: RoutesFile, groups: dict[str, CompiledGroup],
                  models: Mapping[str, CompiledModel] | None = None) -> CompiledRoute:
    timeout = spec.timeout or doc.defaults.timeout
    template = None
    if spec.rewrite and "{" in spec.rewrite:
        template = spec.rewrite
    if spec.llm is not None:
        # Every group some model is served by, in order: health, metrics and the admin
        # API see them; a request's own chain is its model's (CompiledModel.chain).
        chain: dict[str, CompiledGroup] = {}
        if spec.llm.api != "models":
            for model in (models or {}).values():
                for group, _ in model.chain:
                    chain.setdefault(group.name, group)
        route_groups = tuple(chain.values())
    else:
        assert spec.upstream is not None
        route_groups = tuple(groups[n] for n in (spec.upstream, *spec.fallbacks))
    return CompiledRoute(
        name=spec.name,
        methods=frozenset(spec.match.methods),
        groups=route_groups,
        shadow=groups[spec.shadow.upstream] if spec.shadow else None,
        shadow_percent=spec.shadow.percent if spec.shadow else 0.0,
        connect_timeout=timeout.connect,
        total_timeout=timeout.total,
        retry=RetryPlan(
            attempts=spec.retry.attempts,
            backoff=spec.retry.backoff,
            max_backoff=spec.retry.max_backoff,
            on_status=frozenset(spec.retry.on_status),
            methods=frozenset(spec.retry.methods) or IDEMPOTENT_METHODS,
        ),
        max_body_bytes=(
            spec.max_body_bytes if spec.max_body_bytes is not None
            else doc.defaults.max_body_bytes
        ),
        public=spec.public,
        scopes=frozenset(spec.scopes),
        cost=spec.cost,
        spec=spec,
        prefix=spec.match.prefix,
        rewrite=spec.rewrite,
        template=template,
        llm=spec.llm,
    )


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """One consistent, compiled view of routes.yaml and policies/."""

    router: Router
    routes: dict[str, CompiledRoute]
    groups: dict[str, CompiledGroup]
    tiers: dict[str, Tier]
    tenants: dict[str, Tenant]
    sources: tuple[str, ...]
    loaded_at: float = field(default_factory=time.time)
    limits: LimitsTable = EMPTY_LIMITS  # (tenant, route) -> effective limits, precomputed
    # The OpenAPI document's route schemas, and the schema files read (reload watches them).
    api_schemas: Mapping[str, RouteSchemas] = field(default_factory=dict)
    schema_files: tuple[str, ...] = ()
    secret_files: tuple[str, ...] = ()  # upstream header secrets (reload watches them)
    models: Mapping[str, CompiledModel] = field(default_factory=dict)  # routes.yaml models:
    # tenant -> the models it may use (None: all of them)
    tenant_models: Mapping[str, frozenset[str] | None] = field(default_factory=dict)

    def models_of(self, tenant: str) -> list[CompiledModel]:
        """The models `tenant` may use, in routes.yaml order."""
        allowed = self.tenant_models.get(tenant)
        return [m for name, m in self.models.items() if allowed is None or name in allowed]

    @property
    def watched_files(self) -> tuple[str, ...]:
        """Files besides routes.yaml and policies/ whose edit reloads this config."""
        return self.schema_files + self.secret_files


class ConfigHolder:
    """The one mutable cell: requests read `.current`, a reload assigns a new one."""

    def __init__(self, config: RuntimeConfig):
        self.current = config
        self.generation = 1
        self.reload_failures = 0
        self.last_error: str | None = None

    def swap(self, config: RuntimeConfig) -> None:
        self.current = config
        self.generation += 1
        self.last_error = None
