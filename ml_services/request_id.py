"""X-Request-ID propagation: keep the gateway's id, make one when absent, echo it.

Use `RequestIdMiddleware` as the outermost middleware of a service app. It is plain ASGI
(not `BaseHTTPMiddleware`) because it runs on every request of the hot path. The id is
left in `scope["state"]["request_id"]` for handlers and problem bodies.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
MAX_LENGTH = 128


def sane_request_id(raw: bytes) -> str | None:
    """The id if it is printable ASCII of at most 128 characters, else None."""
    if not raw or len(raw) > MAX_LENGTH:
        return None
    if not all(0x20 < b < 0x7F for b in raw):
        return None
    return raw.decode("ascii")


def request_id_of(scope: Scope) -> str:
    """The request id the middleware chose for this request ("-" outside of it)."""
    state: dict[str, Any] = scope.get("state") or {}
    return str(state.get("request_id", "-"))


class RequestIdMiddleware:
    """Stamp every HTTP answer with the request's X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == HEADER:
                request_id = sane_request_id(value)
                break
        if request_id is None:
            request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
