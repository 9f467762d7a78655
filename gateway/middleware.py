"""Transport-level concerns as pure ASGI middleware (no BaseHTTPMiddleware: it breaks
contextvars, where the request id and tenant live for every log line)."""

from __future__ import annotations

import random
import re
import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.context import RequestContext
from gateway.metrics import GatewayMetrics
from gateway.tracing import trace_id_of

_SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}\Z")
access_log = structlog.get_logger("gateway.access")


def new_request_id() -> str:
    # Unique, not secret: the fast PRNG saves a syscall per request over os.urandom.
    return f"{random.getrandbits(128):032x}"


class RequestIdMiddleware:
    """Keeps a sane client `X-Request-ID` or makes one; echoes it; binds it for logs."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                if _SANE_REQUEST_ID.match(value):
                    request_id = value.decode("ascii")
                break
        if request_id is None:
            request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class AccessLogMiddleware:
    """The one observer of every finished request: its access-log line and its metrics.

    Both are derived from what the request left behind (status, duration and the
    `RequestContext` the proxy put in `scope["state"]["ctx"]`), so no policy calls into
    logging or metrics for them. `control_paths` (health, metrics) get the route label
    `control`; other requests without a context matched no route.
    """

    def __init__(self, app: ASGIApp, enabled: bool = True,
                 metrics: GatewayMetrics | None = None,
                 control_paths: frozenset[str] = frozenset()):
        self.app = app
        self.enabled = enabled
        self.metrics = metrics if metrics is not None and metrics.enabled else None
        self.control_paths = control_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        if scope["type"] != "http" or not (self.enabled or metrics):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        control = scope["path"] in self.control_paths
        if metrics is not None and not control:  # a scrape does not count itself in flight
            metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            seconds = time.perf_counter() - started
            ctx = scope.get("state", {}).get("ctx")
            if metrics is not None:
                if not control:
                    metrics.in_flight.dec()
                metrics.observe_request(ctx, scope["method"], status, seconds, control)
            if self.enabled:
                access_log.info(
                    "request", method=scope["method"], path=scope["path"], status=status,
                    duration_ms=round(seconds * 1000, 3), **_access_fields(scope, ctx),
                )


def _access_fields(scope: Scope, ctx: RequestContext | None) -> dict[str, Any]:
    """Who, which route, where and how: the same keys on every line (None when unknown)."""
    if ctx is None:
        return {"route": None, "tenant": None, "upstream": None, "cache": None,
                "rate_limit_remaining": None,
                "trace_id": trace_id_of(_header(scope, b"traceparent")) or None}
    remaining = None
    for name, value in ctx.response_headers:
        if name == b"ratelimit-remaining":
            remaining = int(value) if value.isdigit() else None
    return {
        "route": ctx.route.name,
        "tenant": ctx.principal.tenant_id if ctx.principal else None,
        "upstream": ctx.upstream_target or None,
        "cache": ctx.cache_status or None,
        "rate_limit_remaining": remaining,
        # Set when the request went upstream; else the client's own, if it sent one.
        "trace_id": ctx.trace_id or trace_id_of(ctx.header(b"traceparent")) or None,
        **ctx.extra.get("log", {}),
    }


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope["headers"]:
        if k == name:
            return bytes(v)
    return None
