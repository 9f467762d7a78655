"""The HTTP/1.1 server protocol `gateway serve` runs: uvicorn's httptools protocol with
bounded request heads, and the server's own refusals in the gateway's error contract.

Some requests never reach the app: the parser (llhttp) refuses a garbage request line,
a negative or non-numeric Content-Length, Content-Length together with
Transfer-Encoding, two Content-Length headers, or a Transfer-Encoding that does not end
in `chunked` (the request-smuggling shapes). uvicorn answers those with a plain-text
400; here they get the same `application/problem+json` body and `X-Request-ID` as every
other error, and the connection is closed (lingering, see `_refuse`), since the parser
cannot find the next request.
llhttp finds some of these only after it has reported the head complete, when uvicorn
has already started the app (which would forward the head upstream); so the framing
rules (no Content-Length with Transfer-Encoding, one Content-Length, `chunked` last)
are checked here first, and a refused request never starts.

Request heads are bounded like nginx's `large_client_header_buffers` (8 KiB a line,
32 KiB in all) plus a header count, all `GATEWAY_*` settings:

    URL longer than max_header_line_bytes                          414 uri-too-long
    a header line (name: value) longer than max_header_line_bytes  431
    request line plus all header lines over max_header_bytes       431
    more than max_headers header lines                             431

A refused head never becomes an ASGI request, so it costs no app work and never goes
upstream. Counting happens in the parser callbacks the protocol runs anyway (a few
additions a header); a head still incomplete after more bytes than the total limit and
one read's worth is refused too, so a header that never ends cannot grow in memory.

Slow clients are bounded in time (nginx's client_header_timeout / client_body_timeout;
`GATEWAY_HEADER_TIMEOUT`, 10 s, and `GATEWAY_BODY_TIMEOUT`, 30 s):

    head incomplete header_timeout after the connection opened (or,
      kept alive, after the head's first byte)                    408 request-timeout
    a connection that sent nothing by then                         closed, no answer
    a body that sends nothing for body_timeout                     408 (the app reads a
                                                                   disconnect), or a
                                                                   close if its answer began

So a slowloris client (a byte a second) holds a connection header_timeout at most, and
no idle connection stays open for ever (between requests: uvicorn's 5 s keep-alive).
Timers cost nothing on the hot path: a head or body complete in the read it started in
never arms one (the connection's first head excepted, one timer a connection).
A client's EOF ends its connection, as in uvicorn and nginx: TCP cannot tell a client
that half-closed (shutdown(SHUT_WR)) from one that gave up and closed, and an abandoned
request must free its slot and abort its upstream call at once (gateway.disconnect), so
a request in flight when its client's FIN arrives is cancelled and logged as 499.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import urllib.parse
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
import structlog
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT, service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import (
    BadRequest,
    GatewayError,
    HeaderTooLarge,
    RequestTimeout,
    UriTooLong,
    render_problem,
)
from gateway.http_cycle import GatewayCycle, KeepAlive
from gateway.middleware import SANE_REQUEST_ID, new_request_id

LINGER_SECONDS = 2.0  # reading (and dropping) what a refused client still sends
READ_SLACK = 256 * 1024  # at most one read (uvloop reads up to 256 KiB) past the limit

log = structlog.get_logger("gateway.http")


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """Bounds of one request head (see the module docstring for the answers)."""

    line: int = 8 * 1024
    total: int = 32 * 1024
    count: int = 100


@dataclass(frozen=True, slots=True)
class ReadTimeouts:
    """Seconds a client may take to send a head, and pause within a body."""

    head: float = 10.0
    body: float = 30.0


# Request headers on_header notes for later (framing, 100-continue).
_NOTED = frozenset({b"content-length", b"transfer-encoding", b"expect"})


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the refusal is on the protocol."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits and problem+json refusals, and
    its per-request callbacks rewritten lean: every request passes through them, so each
    is one Python call (uvicorn's own, then the limits' override, made two or three),
    and a request's cycle is a `GatewayCycle`. Connections, upgrades, shutdown and flow
    control stay uvicorn's."""

    cycle: GatewayCycle  # type: ignore[assignment]  # uvicorn's attribute (None before a request)

    def __init__(self, *args: Any, limits: HeaderLimits = HeaderLimits(),
                 timeouts: ReadTimeouts = ReadTimeouts(), **kw: Any):
        super().__init__(*args, **kw)
        self.limits = limits
        self.timeouts = timeouts
        self._timer: asyncio.TimerHandle | None = None  # the head's or the body's deadline
        self._reading_body = False  # from the end of a head to the end of its message
        self._last_read = 0.0  # loop time of the last bytes of a body
        self._refusal: GatewayError | None = None  # set by a callback that stops the parser
        self._head_bytes = 0  # of the current head's request line and complete headers
        self._pending = 0  # bytes fed while a head is incomplete (the memory bound)
        self._in_head = True  # from a message's first byte to the end of its head
        self._refused = False
        self._deferred: tuple[GatewayError, str] | None = None  # owed after earlier answers
        self._lengths = 0  # Content-Length headers of the current head
        self._coding = b""  # the last Transfer-Encoding header's value, lowercased
        self._keep_alive = KeepAlive(self.loop, self.timeout_keep_alive,
                                     self.timeout_keep_alive_handler)
        self._fresh_context = self.config.reset_contextvars
        self._asgi = {"version": self.asgi_version, "spec_version": "2.3"}

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer = self.loop.call_later(self.timeouts.head, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        # uvicorn's, with the timers and the cycle's own disconnect.
        self._cancel_timer()
        self._keep_alive.cancel()
        self.connections.discard(self)
        cycle = self.cycle
        if cycle is not None:
            if not cycle.response_complete:
                cycle.disconnected = True
            cycle.wake()
        if self.flow is not None:
            self.flow.resume_writing()
        if exc is None:
            self.transport.close()
        self.parser = None  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a refusal: dropped unread
        self._keep_alive.idle_since = None  # busy
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:  # a callback below may have set the refusal
            self.logger.warning("Invalid HTTP request received.")  # as uvicorn does
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        if self._refused or self.parser is None:
            return
        if self._in_head:
            self._pending += len(data)
            if self._pending > self.limits.total + READ_SLACK:
                self._refuse(HeaderTooLarge(HeaderTooLarge.TOTAL.format(limit=self.limits.total)))
            elif self._timer is None:  # a kept-alive connection's next head began
                self._timer = self.loop.call_later(self.timeouts.head, self._head_timed_out)
        elif self._reading_body:
            self._last_read = self.loop.time()
            if self._timer is None:
                self._timer = self.loop.call_later(self.timeouts.body, self._body_timed_out)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        if self._refused or not self._in_head or self.transport.is_closing():
            return
        if self._pending == 0 and self.cycle is None:
            self.transport.close()  # never sent a byte: nobody to answer
            return
        self._refuse(RequestTimeout(RequestTimeout.HEAD.format(limit=self.timeouts.head)))

    def _body_timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle
        if not self._reading_body or cycle is None or self.transport.is_closing():
            return
        idle = self.loop.time() - self._last_read
        if self.flow.read_paused or idle < self.timeouts.body:
            # Still sending, or we stopped reading (the app is behind): not the client's
            # fault; look again when the client could next be late.
            if self.flow.read_paused:
                self._last_read, idle = self.loop.time(), 0.0
            self._timer = self.loop.call_later(self.timeouts.body - idle, self._body_timed_out)
            return
        self._reading_body = False
        # As for a broken chunk (send_400_response): the app reads a disconnect, so the
        # half body is never forwarded as complete, and its own answer is dropped.
        cycle.disconnect()
        if cycle.response_started:
            self.transport.close()
            return
        self._refuse(RequestTimeout(RequestTimeout.BODY.format(limit=self.timeouts.body)))

    def on_message_begin(self) -> None:
        self._in_head = True
        self.url = b""
        self.expect_100_continue = False
        headers: list[tuple[bytes, bytes]] = []
        self.headers = headers
        scope: Any = {  # an HTTPScope; built as a plain dict (the cheapest)
            "type": "http", "asgi": self._asgi, "http_version": "1.1",
            "server": self.server, "client": self.client, "scheme": self.scheme,
            "root_path": self.root_path, "headers": headers, "state": self.app_state.copy(),
        }
        self.scope = scope

    def on_header(self, name: bytes, value: bytes) -> None:
        # uvicorn's on_header, plus the limits and the framing headers noted for
        # on_headers_complete. One test of the limits for the usual header.
        limits = self.limits
        size = len(name) + len(value) + 4  # "name: value\r\n"
        self._head_bytes += size
        headers = self.headers
        if size > limits.line or self._head_bytes + len(self.url) > limits.total \
                or len(headers) >= limits.count:
            self._stop(HeaderTooLarge(
                HeaderTooLarge.LINE.format(limit=limits.line) if size > limits.line
                else HeaderTooLarge.COUNT.format(limit=limits.count)
                if self._head_bytes + len(self.url) <= limits.total
                else HeaderTooLarge.TOTAL.format(limit=limits.total)))
        name = name.lower()
        value = value.rstrip(b" \t")  # llhttp keeps trailing whitespace (RFC 9110 §5.5)
        if name in _NOTED:
            if name == b"content-length":
                self._lengths += 1
            elif name == b"transfer-encoding":
                self._coding = value.lower()
            elif value.lower() == b"100-continue":  # expect
                self.expect_100_continue = True
        headers.append((name, value))

    def on_headers_complete(self) -> None:
        limits = self.limits
        if len(self.url) > limits.line:
            self._stop(UriTooLong(UriTooLong.TOO_LONG.format(limit=limits.line)))
        if self._coding and (
            self._lengths or self._coding.rsplit(b",", 1)[-1].strip() != b"chunked"
        ):
            self._stop(BadRequest(BadRequest.FRAMING))  # RFC 9112 §6.1, §6.3
        if self._lengths > 1:
            self._stop(BadRequest(BadRequest.FRAMING))
        self._in_head = False  # the next head counts from zero
        self._pending = self._head_bytes = self._lengths = 0
        self._coding = b""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._reading_body = True
        self._last_read = self.loop.time()
        # uvicorn's on_headers_complete from here, with a GatewayCycle.
        parser = self.parser
        scope: Any = self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return  # data_received hands the connection to the websocket protocol
        parsed_url = httptools.parse_url(self.url)
        raw_path = parsed_url.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        root = self.root_path
        scope["path"] = root + path if root else path
        scope["raw_path"] = root.encode("ascii") + raw_path if root else raw_path
        scope["query_string"] = parsed_url.query or b""
        app = self.app
        if self.limit_concurrency is not None and (
                len(self.connections) >= self.limit_concurrency
                or len(self.tasks) >= self.limit_concurrency):
            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        existing = self.cycle
        self.cycle = cycle = GatewayCycle(
            scope, self.transport, self.flow, self.server_state.default_headers,
            http_version != "1.0" and parser.should_keep_alive(), self.expect_100_continue,
            self.on_response_complete)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, app)
        else:  # pipelined: answered in order, after the one before
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, app))  # type: ignore[arg-type]

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if self._fresh_context:  # uvicorn's opt-in (its reset_contextvars)
            task = self.loop.create_task(cycle.run_asgi(app), context=contextvars.Context())
        else:
            task = self.loop.create_task(cycle.run_asgi(app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.wake()

    def on_message_complete(self) -> None:
        self._reading_body = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.wake()

    def _stop(self, refusal: GatewayError) -> None:
        self._refusal = refusal
        raise _Refused  # httptools re-raises it as HttpParserCallbackError

    def send_400_response(self, msg: str) -> None:
        # uvicorn's one path for a request the parser (or a callback above) refused.
        refusal, self._refusal = self._refusal, None
        cycle = self.cycle
        if not self._in_head and cycle is not None and not cycle.response_complete:
            # A bad body (a broken chunk) of a request the app is already handling: the
            # app reads a disconnect, so nothing half-read is forwarded as complete, and
            # its own answer is dropped; ours goes out unless its answer has begun.
            cycle.disconnect()
            if cycle.response_started:
                self.transport.close()
                return
        self._refuse(refusal or BadRequest(BadRequest.UNPARSABLE))

    def _refuse(self, refusal: GatewayError) -> None:
        """Answer `refusal` and close, after the answers still owed to requests that came
        before it on this connection (pipelined): HTTP/1.1 answers go out in order."""
        self._refused = True  # whatever still arrives is dropped
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and not cycle.disconnected:
            self._deferred = (refusal, self._request_id())
        else:
            self._answer(refusal, self._request_id())

    def on_response_complete(self) -> None:
        # uvicorn's, with the lazy keep-alive deadline (gateway.http_cycle.KeepAlive).
        self.server_state.total_requests += 1
        if not self.transport.is_closing():
            if self.flow.read_paused:
                self.flow.resume_reading()
            if self.pipeline:
                cycle, app = self.pipeline.pop()
                self._start_asgi_task(cycle, app)
            else:
                self._keep_alive.idle()
        if self._deferred is not None and not self.pipeline and self.cycle.response_complete:
            self._answer(*self._deferred)

    def _answer(self, refusal: GatewayError, request_id: str) -> None:
        status, headers, body = render_problem(refusal, request_id)
        # No access-log line or metric sees it: the request never reached the app.
        log.info("request_refused", request_id=request_id, status=status,
                 detail=refusal.detail)
        headers += [*self.server_state.default_headers, (b"content-length", b"%d" % len(body)),
                    (b"x-request-id", request_id.encode()), (b"connection", b"close")]
        head = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode())]
        head += [name + b": " + value + b"\r\n" for name, value in headers]
        self.transport.write(b"".join(head) + b"\r\n" + body)
        # A lingering close (as nginx does): closing with the client's bytes unread
        # would send a reset, which can destroy the answer before the client reads it.
        # So: FIN after the answer, drop what still arrives, close at the client's FIN
        # (eof_received) or after LINGER_SECONDS.
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()

    def _request_id(self) -> str:
        """The client's X-Request-ID if it was parsed and is sane, else a new one."""
        for name, value in self.headers or ():
            if name == b"x-request-id" and SANE_REQUEST_ID.match(value):
                return value.decode("ascii")
        return new_request_id()


def protocol_factory(limits: HeaderLimits, timeouts: ReadTimeouts = ReadTimeouts()
                     ) -> type[asyncio.Protocol]:
    """What `uvicorn.run(http=...)` takes: the protocol bound to these limits (a partial,
    which pickles, so worker processes get the same limits)."""
    factory = functools.partial(GatewayHttpProtocol, limits=limits, timeouts=timeouts)
    return factory  # type: ignore[return-value]
