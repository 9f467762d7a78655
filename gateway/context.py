"""Per-request state shared by the proxy, the policies, the upstream client and the
access-log middleware (which derives the access line and the metrics from it).

Everything that travels between them is a typed field here, written by one step:
    principal                authenticate        who is calling
    rate_limit_remaining     rate_limit          the RateLimit-Remaining it answered
    cache_status, cache      cache               X-Cache, and its lookup until on_response
    idempotency              idempotency         the request's Idempotency-Key claim
    job_id, job_created      jobs                the job a submission made or found
    upstream_target, trace_id, attempts, fallbacks   the upstream client
    llm, chain               llm                 the model call, its groups and bodies;
                                                 usage as the answer reported it
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.cache_entry import CachedAnswer
from gateway.config.runtime import CompiledGroup, CompiledModel, CompiledRoute, RuntimeConfig
from gateway.stores.jobs import IdempotencyClaim


@dataclass(slots=True)
class Principal:
    """Who is calling: set by authentication, read by every later step."""

    tenant_id: str
    credential_id: str
    kind: str  # "api_key" | "jwt"
    scopes: frozenset[str] = frozenset()


class Attempt(NamedTuple):
    """One upstream attempt, recorded by the upstream client for metrics."""

    group: str
    target: str
    seconds: float  # until the answer's head (or its whole body when buffered)
    outcome: str  # "" when answered below 500, else the failure kind


@dataclass(slots=True)
class CacheLookup:
    """The cache's state of one request, from its on_request to its on_response."""

    key: str
    ttl: float
    store: bool  # whether its answer may be stored
    flight: asyncio.Future[CachedAnswer | None] | None = None  # set when it leads
    # Semantic routes: the request's embedding and its partition, to index the answer.
    vector: Any = None
    partition: str = ""


@dataclass(slots=True)
class LlmCall:
    """One call of an OpenAI-compatible route: the model, what was reserved for it, and
    the usage the upstream reported (`reported` False until it did)."""

    model: CompiledModel
    stream: bool
    estimate: int  # tokens reserved before the call (prompt estimate + max tokens)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reported: bool = False
    status: int = 0  # the upstream's answer; 0 while there is none

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def spend(self) -> float:
        """Currency units of the reported usage, by the model's price table."""
        m = self.model
        return self.prompt_tokens * m.prompt_price + self.completion_tokens * m.completion_price


@dataclass(slots=True)
class RequestContext:
    """Everything one request carries through the pipeline; built once by the proxy."""

    request_id: str
    config: RuntimeConfig  # the snapshot this request runs on, start to end
    route: CompiledRoute
    path_params: dict[str, str]
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]  # the client's raw headers, lower-case names
    client_ip: str
    started: float
    principal: Principal | None = None
    body: bytes | None = None  # set when the route replays bodies (see CompiledRoute)
    trace_id: str = ""
    upstream_target: str = ""
    # True while it waits on a coalesced leader's answer: like the upstream call, a wait
    # the request may walk away from if its client leaves (gateway.disconnect).
    awaiting_leader: bool = False
    cache_status: str = ""
    cache: CacheLookup | None = None
    rate_limit_remaining: int | None = None
    idempotency: IdempotencyClaim | None = None
    job_id: str = ""
    job_created: bool = False
    attempts: list[Attempt] = field(default_factory=list)  # in the order they were made
    fallbacks: int = 0  # groups moved on to after the primary
    llm: LlmCall | None = None  # on OpenAI-compatible routes, once the model is known
    # The groups to try, each with the body to send it (an llm route's model names
    # differ per group); empty: the route's groups, with the client's body.
    chain: tuple[tuple[CompiledGroup, bytes], ...] = ()
    # Headers policies add to the client's answer (e.g. RateLimit-*), on success and error.
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Run when the request ends however it ends (finished, failed, cancelled, disconnected);
    # one that returns None instead of an awaitable has done its work synchronously.
    cleanups: list[Callable[[], Coroutine[Any, Any, None] | None]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        """The client's first header of that (lower-case) name."""
        for k, v in self.headers:
            if k == name:
                return v
        return None
