"""The server's answer writer: uvicorn's `RequestResponseCycle` with a leaner `send`.

uvicorn's `send` runs two regular expressions and a `lower()` over every header of
every answer, then writes the head and the body in two writes: two syscalls for an
answer that is whole, the proxy's usual one. That was the largest single Python cost of
a proxied request (bench/bench_instructions.py). The gateway's own app is the only ASGI
app this server runs, and its header names are lower-case (as ASGI requires): literals
of its own code, or upstream names that llhttp parsed and the upstream client lowered.
So here:

* the head is built in one join, and refused with uvicorn's RuntimeError if any name or
  value holds a CR or LF (response splitting): one count over the whole head, in C,
  instead of two searches per header;
* a head that declares a body length waits for the first part of that body and goes
  out in the same write. Answers without a declared length (chunked, event streams) or
  without a body (HEAD, 204, 304, length 0) are written at once, as before.

A request whose whole body is in when the app first asks for it gets it without an
await on uvicorn's (already set) event. Everything else (flow control, Content-Length
accounting, keep-alive, completion) is uvicorn's own code path.

`KeepAlive` is the connection's idle deadline between requests, armed lazily: uvicorn
makes a timer at the end of every answer and cancels it at the next request's first
bytes, a timer made and destroyed per request.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

# Response headers the server itself acts on; any other is copied as it is.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
INVALID_HEADER = "Invalid HTTP header: a name or value holds CR or LF."


class GatewayCycle(RequestResponseCycle):
    """One request and its answer on a connection (see the module docstring)."""

    _head: bytes | None = None  # a head not yet written: it goes with the body's first part
    _body_given = False  # the app has had the whole body: later receives wait (uvicorn's)

    async def receive(self) -> Any:
        if self.more_body or self._body_given or self.waiting_for_100_continue \
                or self.disconnected or self.response_complete:
            return await super().receive()
        self._body_given = True
        self.flow.resume_reading()
        self.message_event.clear()
        body, self.body = bytes(self.body), bytearray()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(self, message: Any) -> None:
        if self.response_started:
            if self._head is None:
                await super().send(message)
            else:
                await self._send_first_part(message)
            return
        if self.access_log or message["type"] != "http.response.start":
            await super().send(message)  # uvicorn's own checks and errors
            return
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        status = message["status"]
        headers = [*self.default_headers, *message.get("headers", ())]
        closing = False
        parts: list[bytes] = []
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
            if name in _FRAMING:
                if name == b"content-length":
                    if self.chunked_encoding is None:
                        self.expected_content_length = int(value.decode())
                        self.chunked_encoding = False
                elif name == b"transfer-encoding":
                    if value.lower() == b"chunked":
                        self.expected_content_length = 0
                        self.chunked_encoding = True
                elif b"close" in [t.lower().strip() for t in value.split(b",")]:
                    self.keep_alive = False
                    closing = True
        lines = b"".join(parts)
        if lines.count(b"\n") != len(headers) or lines.count(b"\r") != len(headers):
            raise RuntimeError(INVALID_HEADER)
        extra = b""
        if not self.keep_alive and not closing:
            extra = b"connection: close\r\n"
        head_request = self.scope["method"] == "HEAD"
        if self.chunked_encoding is None and not head_request and status not in (204, 304):
            self.chunked_encoding = True
            extra += b"transfer-encoding: chunked\r\n"
        head = STATUS_LINE[status] + lines + extra + b"\r\n"
        if self.chunked_encoding is False and self.expected_content_length and not head_request:
            self._head = head
        else:
            self.transport.write(head)

    async def _send_first_part(self, message: Any) -> None:
        """The first body message of an answer whose head waits: both in one write."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', "
                               f"but got '{message['type']}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if len(body) > self.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        self.expected_content_length -= len(body)
        head, self._head = self._head, None
        assert head is not None
        self.transport.write(head + body if body else head)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


class KeepAlive:
    """A connection's idle deadline between requests. Each answer's end notes the time
    (`idle`), a request's first bytes clear it (`busy`); one timer per period at most,
    which closes the connection (`on_expiry`) only if it has been idle that long, and
    otherwise looks again when it could be."""

    __slots__ = ("idle_since", "loop", "on_expiry", "seconds", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float,
                 on_expiry: Callable[[], None]):
        self.loop, self.seconds, self.on_expiry = loop, seconds, on_expiry
        self.idle_since: float | None = None
        self.timer: asyncio.TimerHandle | None = None

    def idle(self) -> None:
        self.idle_since = self.loop.time()
        if self.timer is None:
            self.timer = self.loop.call_later(self.seconds, self._expired)

    def busy(self) -> None:
        self.idle_since = None

    def cancel(self) -> None:
        self.idle_since = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expired(self) -> None:
        self.timer = None
        if self.idle_since is None:
            return  # a request came: its answer's end arms the next period
        left = self.idle_since + self.seconds - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._expired)
        else:
            self.on_expiry()


def start_cycle(protocol: HttpToolsProtocol) -> None:
    """uvicorn's `on_headers_complete` (after the gateway's head checks), with a
    `GatewayCycle` for the request's answer."""
    p = protocol
    parser, scope = p.parser, p.scope
    http_version = parser.get_http_version()
    scope["method"] = parser.get_method().decode("ascii")
    if http_version != "1.1":
        scope["http_version"] = http_version
    if parser.should_upgrade() and p._should_upgrade():
        return  # data_received hands the connection to the websocket protocol
    parsed_url = httptools.parse_url(p.url)
    raw_path = parsed_url.path
    path = raw_path.decode("ascii")
    if "%" in path:
        path = urllib.parse.unquote(path)
    scope["path"] = p.root_path + path
    scope["raw_path"] = p.root_path.encode("ascii") + raw_path
    scope["query_string"] = parsed_url.query or b""
    app = p.app
    if p.limit_concurrency is not None and (
            len(p.connections) >= p.limit_concurrency or len(p.tasks) >= p.limit_concurrency):
        app = service_unavailable
        p.logger.warning("Exceeded concurrency limit.")
    existing = p.cycle
    p.cycle = cycle = GatewayCycle(
        scope=scope, transport=p.transport, flow=p.flow, logger=p.logger,
        access_logger=p.access_logger, access_log=p.access_log,
        default_headers=p.server_state.default_headers, message_event=asyncio.Event(),
        expect_100_continue=p.expect_100_continue,
        keep_alive=http_version != "1.0" and parser.should_keep_alive(),
        on_response=p.on_response_complete,
    )
    if existing is None or existing.response_complete:
        p._start_asgi_task(cycle, app)
    else:  # pipelined: answered in order, after the one before
        p.flow.pause_reading()
        p.pipeline.appendleft((cycle, app))
