"""Frozen pydantic models mirroring routes.yaml and policies/ (tiers.yaml, tenants.yaml).

These describe the files as operators write them; `runtime.py` compiles them into the
lookup structures requests use. Unknown keys are refused everywhere (`extra="forbid"`),
so a typo is an error naming its line instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    HttpUrl,
    Tag,
    field_validator,
    model_validator,
)

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"

Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Seconds = Annotated[float, Field(gt=0, le=3600)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeout(Model):
    """Connect and total time allowed for one upstream attempt."""

    connect: Seconds = 2.0
    total: Seconds = 30.0


class SecretRef(Model):
    """A header value kept out of routes.yaml: read from an environment variable or a
    file (a mounted secret) each time the config loads, never logged or printed."""

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    file: str | None = Field(None, min_length=1)
    prefix: str = ""  # put before the secret, e.g. "Bearer "

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers whose values are credentials: only a SecretRef may set them.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key",
                                "api-key", "cookie"})
CREDENTIAL_WORDS = ("key", "token", "secret", "password", "auth")
# Set by the gateway itself on every upstream request (or by the HTTP client).
GATEWAY_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                             "x-request-id", "traceparent", "x-forwarded-for", "x-tenant-id"})
# A string is a static value; a mapping a secret (one branch each, so an error in a
# secret's mapping is reported once, at its own field: tags with "[" are left out of the
# field path by `source.validation_error`).
HeaderValue = Annotated[
    Annotated[str, Tag("value[static]")] | Annotated[SecretRef, Tag("value[secret]")],
    Discriminator(lambda v: "value[static]" if isinstance(v, str) else "value[secret]"),
]


def _check_headers(headers: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
    for name, value in headers.items():
        lower = name.lower()
        if not HEADER_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a header name")
        if lower in GATEWAY_HEADERS:
            raise ValueError(f"{name} is set by the gateway itself")
        if isinstance(value, str):
            if lower in CREDENTIAL_HEADERS or any(w in lower for w in CREDENTIAL_WORDS):
                raise ValueError(
                    f"{name} carries a credential: give it as {{env: NAME}} or "
                    "{file: PATH}, never inline in routes.yaml")
            if "\r" in value or "\n" in value:
                raise ValueError(f"the value of {name} holds a line break")
    return headers


class Target(Model):
    """One upstream server and its share of the group's traffic."""

    url: HttpUrl
    weight: int = Field(1, ge=0, le=10_000)
    headers: dict[str, HeaderValue] = {}  # over the group's, header by header

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, v: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
        return _check_headers(v)

    @field_validator("url")
    @classmethod
    def _no_query(cls, v: HttpUrl) -> HttpUrl:
        if v.query or v.fragment:
            raise ValueError("target url must not carry a query or fragment")
        return v


class HealthCheck(Model):
    """Active check: a periodic GET on each target's health path."""

    path: str = "/healthz"
    interval: Seconds = 5.0
    timeout: Seconds = 1.0
    unhealthy_threshold: int = Field(2, ge=1)
    healthy_threshold: int = Field(1, ge=1)


class CircuitBreaker(Model):
    """Passive check: consecutive failures open a target's circuit for a cool-down."""

    failures: int = Field(5, ge=1)
    cooldown: Seconds = 10.0


class UpstreamGroup(Model):
    """Named set of weighted targets (e.g. 90/10 between two model versions)."""

    targets: list[Target] = Field(min_length=1)
    # Sent to every target with each request (a target's own headers win, by name); they
    # replace a client's header of the same name.
    headers: dict[str, HeaderValue] = {}
    health_check: HealthCheck | None = None
    circuit_breaker: CircuitBreaker = CircuitBreaker()

    @field_validator("headers")
    @classmethod
    def _valid_headers(cls, v: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
        return _check_headers(v)

    @model_validator(mode="after")
    def _some_weight(self) -> UpstreamGroup:
        if not any(t.weight for t in self.targets):
            raise ValueError("at least one target needs a weight above 0")
        return self


class Match(Model):
    """Which requests a route takes: one of `path` (exact or with {params}) or `prefix`."""

    path: str | None = None
    prefix: str | None = None
    methods: list[Literal[HTTP_METHODS]] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _one_of(self) -> Match:
        if (self.path is None) == (self.prefix is None):
            raise ValueError("give exactly one of 'path' or 'prefix'")
        p = self.path if self.path is not None else self.prefix
        assert p is not None
        if not p.startswith("/"):
            raise ValueError("paths start with '/'")
        if self.prefix is not None and "{" in self.prefix:
            raise ValueError("a prefix cannot hold {parameters}")
        if self.path is not None:
            for name in re.findall(r"\{([^}]*)\}", self.path):
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ValueError(f"bad path parameter {{{name}}}")
        return self


class Retry(Model):
    """Retries with exponential backoff and full jitter, only where it is safe."""

    attempts: int = Field(0, ge=0, le=10, description="retries after the first try")
    backoff: Seconds = 0.05
    max_backoff: Seconds = 2.0
    on_status: list[Annotated[int, Field(ge=500, le=599)]] = [502, 503, 504]
    # Non-idempotent methods are retried only when listed here explicitly.
    methods: list[Literal[HTTP_METHODS]] = sorted(IDEMPOTENT_METHODS)  # type: ignore[valid-type]


class Shadow(Model):
    """A copy of each request goes to this group; its answer is discarded."""

    upstream: Name
    percent: float = Field(100.0, ge=0, le=100)


class SemanticCache(Model):
    """Answers for similar requests, not only equal ones (docs/cache.md, "Semantic")."""

    threshold: float = Field(0.92, gt=0, le=1)  # cosine similarity at least this
    field: str = Field("text", min_length=1)  # the top-level JSON member embedded
    upstream: Name = "embed"  # the group whose /v1/embeddings computes the vectors
    timeout: Seconds = 2.0  # for the embedding call; slower is a plain miss
    max_entries: int = Field(256, ge=1, le=100_000)  # per tenant, route and rest-of-body


class Cache(Model):
    """Response caching for a route (enforced by the cache policy)."""

    enabled: bool = True
    ttl: Seconds = 60.0
    shared: bool = False
    vary: list[str] = []
    semantic: SemanticCache | None = None


class AsyncJobs(Model):
    """`async:` on a route: it takes `Prefer: respond-async` (RFC 7240) and runs such
    requests as jobs on the queue (docs/jobs.md)."""

    only: bool = Field(False, description="every request is a job, Prefer or not")
    result_ttl: float = Field(86_400.0, gt=0, le=30 * 86_400,
                              description="seconds a finished job and its result are kept")
    max_attempts: int = Field(3, ge=1, le=20,
                              description="deliveries to workers before the job fails")


class RouteApi(Model):
    """How a route appears in the OpenAPI document (`GET /openapi.json`).

    `request` and `response` are JSON Schemas (2020-12), written inline or as
    `{$ref: ...}` naming a schema file (relative to routes.yaml), a file shipped in an
    installed package (`package:ml_services/schemas/sentiment.json`), either with an
    optional `#/json/pointer`, or a schema of the document (`#/components/schemas/Name`).
    They are resolved when the config loads (gateway/config/schemas.py).
    """

    summary: str = ""
    description: str = ""
    tags: list[str] = []
    content_type: str = Field("application/json", pattern=r"^[\w.+-]+/[\w.+-]+$")
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


LLM_APIS = ("chat", "completions", "embeddings", "models")


class LlmRoute(Model):
    """An OpenAI-compatible route (docs/llm.md): the body's `model` picks the upstreams
    from routes.yaml's `models:`; `api: models` is answered by the gateway itself."""

    api: Literal[LLM_APIS]  # type: ignore[valid-type]
    # Streamed chat/completions: ask the upstream for the final usage chunk
    # (stream_options.include_usage), so streamed answers can be counted too.
    include_usage: bool = True
    # Completion tokens reserved for a request that sets no max_tokens (docs/llm.md).
    max_tokens: int = Field(1024, ge=1, le=10_000_000)


class ModelServe(Model):
    """One place a model is served: an upstream group, and its name there."""

    upstream: Name
    model: str | None = Field(None, min_length=1)  # default: the name clients use


class Price(Model):
    """What a model's tokens cost, in currency units per million tokens."""

    prompt: float = Field(0.0, ge=0)
    completion: float = Field(0.0, ge=0)


class LlmModel(Model):
    """A model clients may name: where it is served (tried in order) and its price."""

    serve: list[ModelServe] = Field(min_length=1)
    price: Price = Price()
    owned_by: str = "gateway"  # shown by /v1/models


class Route(Model):
    """One entry of routes.yaml: match → upstream group, with its traffic rules."""

    name: Name
    match: Match
    upstream: Name | None = None  # required, except on `llm:` routes (models: say)
    fallbacks: list[Name] = []
    rewrite: str | None = None
    timeout: Timeout | None = None
    retry: Retry = Retry()
    shadow: Shadow | None = None
    max_body_bytes: int | None = Field(None, ge=0)
    public: bool = False
    scopes: list[str] = []
    cost: int = Field(1, ge=0)
    cache: Cache | None = None
    # `async` is a Python keyword: the field has another name, the file the real one.
    async_: AsyncJobs | None = Field(None, alias="async")
    openapi: RouteApi | None = None
    llm: LlmRoute | None = None

    @model_validator(mode="after")
    def _upstream_or_llm(self) -> Route:
        if self.llm is None and self.upstream is None:
            raise ValueError("a route needs an upstream (or an llm: section)")
        if self.llm is not None and (self.upstream is not None or self.fallbacks):
            raise ValueError("an llm route takes its upstreams from models: (give no "
                             "upstream or fallbacks)")
        return self

    @field_validator("rewrite")
    @classmethod
    def _rewrite_abs(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("rewrite paths start with '/'")
        return v


class Defaults(Model):
    """Values a route takes when it does not set its own."""

    timeout: Timeout = Timeout()
    max_body_bytes: int = Field(1_048_576, ge=0)


class RoutesFile(Model):
    """The whole routes.yaml document."""

    version: Literal[1] = 1
    defaults: Defaults = Defaults()
    upstreams: dict[Name, UpstreamGroup]
    routes: list[Route]
    # OpenAI-compatible models by the name clients send (docs/llm.md).
    models: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$")],
                 LlmModel] = {}


# -- policies/ ---------------------------------------------------------------------------

# limits notation, e.g. "100/minute; 5000/day"
LimitSpec = Annotated[str, Field(min_length=1)]


class Limits(Model):
    """Rate limits and caps; every field optional so a tenant can override any one of them."""

    rate: LimitSpec | None = None
    max_in_flight: int | None = Field(None, ge=1)
    max_queued_jobs: int | None = Field(None, ge=1, description="jobs queued or running")
    routes: dict[Name, LimitSpec] = {}
    # LLM tokens (prompt + completion) per window, tenant-wide: "100000/minute; 2000000/day"
    tokens: LimitSpec | None = None
    # Spend in currency units per window by the models' prices: "50/day; 500/month"
    budget: LimitSpec | None = None

    @field_validator("rate", "tokens", "budget")
    @classmethod
    def _parse_rate(cls, v: str | None) -> str | None:
        return _check_limits(v)

    @field_validator("routes")
    @classmethod
    def _parse_routes(cls, v: dict[str, str]) -> dict[str, str]:
        for spec in v.values():
            _check_limits(spec)
        return v


def _check_limits(spec: str | None) -> str | None:
    if spec is None:
        return None
    from limits import parse_many

    try:
        parse_many(spec)
    except ValueError:
        raise ValueError(
            f"{spec!r} is not in limits notation, e.g. '100/minute; 5000/day'") from None
    return spec


class Tier(Limits):
    """A named bundle of limits tenants subscribe to (free, pro, ...)."""

    description: str = ""


class TiersFile(Model):
    """policies/tiers.yaml."""

    version: Literal[1] = 1
    tiers: dict[Name, Tier] = {}


class Webhooks(Model):
    """Where a tenant's job callbacks may go: URL prefixes, each an absolute http(s) URL
    with a path (`https://hooks.example.com/gateway/`). A Callback-URL under none of
    them is refused at submission, so the gateway only calls what an operator allowed."""

    allowed_urls: list[str] = []

    @field_validator("allowed_urls")
    @classmethod
    def _absolute(cls, v: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        for url in v:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname \
                    or not parts.path.startswith("/") or parts.query or parts.fragment \
                    or parts.username or parts.password:
                raise ValueError(f"{url!r} is not an absolute http(s) URL with a path "
                                 "(and no query, fragment or credentials)")
        return v


class Tenant(Model):
    """One customer of the gateway: who it is, its tier, what it may call."""

    name: str = ""
    tier: Name | None = None
    enabled: bool = True
    routes: list[str] = Field(["*"], description='route names it may call; "*" for all')
    models: list[str] = Field(["*"], description='models it may use; "*" for all')
    overrides: Limits = Limits()
    webhooks: Webhooks = Webhooks()


class TenantsFile(Model):
    """policies/tenants.yaml."""

    version: Literal[1] = 1
    tenants: dict[Name, Tenant] = {}
