"""Transport-level concerns as pure ASGI middleware (no BaseHTTPMiddleware: it breaks
contextvars, where the request id and tenant live for every log line)."""

from __future__ import annotations

import random
import re
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    """One log line per request, after the answer: who, which route, where, how it went."""

    def __init__(self, app: ASGIApp, enabled: bool = True):
        self.app = app
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.enabled:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            ctx = scope.get("state", {}).get("ctx")
            fields = {}
            if ctx is not None:
                fields = {
                    "route": ctx.route.name,
                    "tenant": ctx.principal.tenant_id if ctx.principal else None,
                    "upstream": ctx.upstream_target or None,
                    "cache": ctx.cache_status or None,
                    "trace_id": ctx.trace_id or None,
                    **ctx.extra.get("log", {}),
                }
            access_log.info(
                "request", method=scope["method"], path=scope["path"], status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 3), **fields,
            )

