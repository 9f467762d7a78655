"""Transport-level concerns as pure ASGI middleware (no BaseHTTPMiddleware: it breaks
contextvars, where the request id and tenant live for every log line)."""

from __future__ import annotations

import random
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.config.reserved import RESERVED_EXACT, RESERVED_PREFIXES
from gateway.context import RequestContext
from gateway.logging import start_request_fields, write_access
from gateway.metrics import GatewayMetrics
from gateway.tracing import trace_id_of

SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}\Z")


def new_request_id() -> str:
    # Unique, not secret: the fast PRNG saves a syscall per request over os.urandom.
    return f"{random.getrandbits(128):032x}"


class RequestEdge:
    """The edge of every HTTP request: its id, its observation, then its handler.

    * Keeps a sane client `X-Request-ID` or makes one; echoes it; binds it for logs. The
      send wrapper that adds it sees every answer's head anyway, so it also notes the
      status in `scope["state"]["status"]` for the access log.
    * The one observer of every finished request: its access-log line and its metrics,
      derived from what the request left behind (that status, the duration, the
      `RequestContext` the proxy put in `scope["state"]["ctx"]`), so no policy calls
      into logging or metrics for them. Requests to the gateway's own (reserved) paths
      get the route label `control`; other requests without a context matched no
      route. An answer never started counts as a 500.
    * The reserved test that picks the label also picks the handler: the gateway's
      endpoints (`control`, `gateway.endpoints.GatewayDispatch`) or the `proxy` itself.

    One coroutine and one send wrapper a request: a request id middleware, an access
    log middleware and the dispatch were three frames on the path of every request.
    """

    def __init__(self, control: ASGIApp, proxy: ASGIApp, access_log: bool = True,
                 metrics: GatewayMetrics | None = None):
        self.control, self.proxy = control, proxy
        self.access_log = access_log
        self.metrics = metrics if metrics is not None and metrics.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.control(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if SANE_REQUEST_ID.match(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        start_request_fields(request_id=request_id)
        header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
                state["status"] = message["status"]
            await send(message)

        path = scope["path"]  # the gateway's own paths (`is_reserved`, inline)
        control = path in RESERVED_EXACT or path.startswith(RESERVED_PREFIXES)
        app = self.control if control else self.proxy
        metrics = self.metrics
        if not (self.access_log or metrics):
            await app(scope, receive, send_with_id)
            return
        started = time.perf_counter()
        if metrics is not None and not control:  # a scrape does not count itself in flight
            metrics.active += 1
        try:
            await app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            status = state.get("status", 500)
            ctx = state.get("ctx")
            if metrics is not None:
                if not control:
                    metrics.active -= 1
                metrics.observe_request(ctx, scope["method"], status, seconds, control)
            if self.access_log:
                write_access(_access_fields(scope, ctx, status, seconds))


def _access_fields(scope: Scope, ctx: RequestContext | None, status: int, seconds: float
                   ) -> dict[str, Any]:
    """Who, which route, where and how: the same keys on every line (None when unknown)."""
    duration_ms = int(seconds * 1e6) / 1000  # to the microsecond
    if ctx is None:
        return {
            "request_id": scope.get("state", {}).get("request_id"),
            "method": scope["method"], "path": scope["path"],
            "status": status, "duration_ms": duration_ms, "route": None, "tenant": None,
            "upstream": None, "cache": None, "rate_limit_remaining": None,
            "trace_id": trace_id_of(_header(scope, b"traceparent")) or None, "credential": None,
        }
    principal = ctx.principal
    fields = {
        "request_id": ctx.request_id, "method": ctx.method, "path": ctx.path, "status": status,
        "duration_ms": duration_ms, "route": ctx.route.name,
        "tenant": principal.tenant_id if principal else None,
        "upstream": ctx.upstream_target or None,
        "cache": ctx.cache_status or None,
        "rate_limit_remaining": ctx.rate_limit_remaining,
        # Set when the request went upstream; else the client's own, if it sent one.
        "trace_id": ctx.trace_id or trace_id_of(ctx.header(b"traceparent")) or None,
    }
    fields["credential"] = principal.credential_id if principal else None
    return fields


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None
