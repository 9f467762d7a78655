"""Per-request state shared by the proxy, the policies and the upstream client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.config.runtime import CompiledRoute, RuntimeConfig


@dataclass(slots=True)
class Principal:
    """Who is calling: set by authentication, read by every later step."""

    tenant_id: str
    credential_id: str
    kind: str  # "api_key" | "jwt"
    scopes: frozenset[str] = frozenset()


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
    cache_status: str = ""
    # Headers policies add to the client's answer (e.g. RateLimit-*), on success and error.
    response_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # Run when the request ends however it ends (finished, failed, cancelled, disconnected).
    cleanups: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def header(self, name: bytes) -> bytes | None:
        """The client's first header of that (lower-case) name."""
        for k, v in self.headers:
            if k == name:
                return v
        return None
