"""One request and its answer on a connection: the ASGI `receive` and `send` of
`gateway serve`'s server (gateway/http_protocol.py), in place of uvicorn's
`RequestResponseCycle`, whose bytes and states it reproduces (tests/test_http_cycle.py
holds the two side by side).

What it does differently, because it runs on every request:

* `send` builds the answer's head in one join, and refuses it with a RuntimeError if any
  name or value holds a CR or LF (response splitting): one count over the whole head, in
  C, instead of uvicorn's two regular expressions and a `lower()` per header. The
  gateway's own app is the only ASGI app this server runs, and its header names are
  lower-case (as ASGI requires): literals of its own code, or upstream names that llhttp
  parsed and the upstream client lowered.
* A head that declares a body length waits for the first part of that body and goes out
  in the same write: one syscall for a whole answer, the proxy's usual one. Answers
  without a declared length (chunked, event streams) or without a body (HEAD, 204, 304,
  length 0) are written at once.
* A request whose whole body is in when the app first asks for it gets it without an
  await. Otherwise `receive` waits on a future made only then (`wake` resolves it), not
  on an `asyncio.Event` made for every request.
* No uvicorn access-log line: `gateway serve` turns that log off and writes its own
  (gateway/logging.py).
* `__slots__`: a request's cycle is one small object.

`KeepAlive` is the connection's idle deadline between requests, armed lazily: uvicorn
makes a timer at the end of every answer and cancels it at the next request's first
bytes, a timer made and destroyed per request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

# Response headers the server itself acts on; any other is copied as it is.
_FRAMING = frozenset({b"content-length", b"transfer-encoding", b"connection"})
INVALID_HEADER = "Invalid HTTP header: a name or value holds CR or LF."
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_SERVER_ERROR = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"),
                 (b"connection", b"close")]

log = logging.getLogger("uvicorn.error")  # where uvicorn reports a failing app


def _no_response() -> None:
    pass


class GatewayCycle:
    """One request and its answer (see the module docstring)."""

    __slots__ = ("_body_given", "_head", "_signalled", "_waiter", "body", "chunked_encoding",
                 "default_headers", "disconnected", "expected_content_length", "flow",
                 "keep_alive", "more_body", "on_response", "response_complete",
                 "response_started", "scope", "transport", "waiting_for_100_continue")

    def __init__(self, scope: dict[str, Any], transport: asyncio.Transport, flow: FlowControl,
                 default_headers: list[tuple[bytes, bytes]], keep_alive: bool,
                 expect_100_continue: bool, on_response: Callable[[], None]):
        self.scope, self.transport, self.flow = scope, transport, flow
        self.default_headers, self.on_response = default_headers, on_response
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue
        self.body = bytearray()
        self.more_body = True
        self.response_started = self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        self._head: bytes | None = None  # a head not yet written: it goes with the body
        self._body_given = False  # the app has had the whole body: later receives wait
        self._signalled = False  # news for `receive` (body bytes, its end, a disconnect)
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        """News for `receive`: more body, the body's end, the client gone, the answer
        done (what uvicorn's cycle signals with `message_event.set()`)."""
        self._signalled = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def disconnect(self) -> None:
        """The client is gone (or must be treated so): `receive` answers a disconnect."""
        self.disconnected = True
        self.wake()

    async def run_asgi(self, app: Any) -> None:
        """The app on this request, with uvicorn's answers for one that fails."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self._send_500()
            else:
                self.transport.close()
        else:
            if result is not None:
                log.error("ASGI callable should return None, but returned '%s'.", result)
                self.transport.close()
            elif not self.response_started and not self.disconnected:
                log.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.response_complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self.transport.close()
        finally:
            self.on_response = _no_response

    async def _send_500(self) -> None:
        await self.send({"type": "http.response.start", "status": 500,
                         "headers": _SERVER_ERROR})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error"})

    async def receive(self) -> dict[str, Any]:
        if not (self.more_body or self._body_given or self.waiting_for_100_continue
                or self.disconnected or self.response_complete):
            self._body_given = True  # the whole body is in: no wait
            self.flow.resume_reading()
            self._signalled = False
            body, self.body = bytes(self.body), bytearray()
            return {"type": "http.request", "body": body, "more_body": False}
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(_CONTINUE)
            self.waiting_for_100_continue = False
        if not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            if not self._signalled:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
                await waiter
            self._signalled = False
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body, self.body = bytes(self.body), bytearray()
        if not self.more_body:
            self._body_given = True  # the last part: what follows is the disconnect
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: Any) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', "
                                   f"but got '{message['type']}'.")
            self._start(message)
        elif self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, "
                               f"after response already completed.")
        elif message["type"] != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', "
                               f"but got '{message['type']}'.")
        else:
            self._body(message.get("body", b""), message.get("more_body", False))

    def _start(self, message: Any) -> None:
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
            self._head = head  # written with the body's first part
        else:
            self.transport.write(head)

    def _body(self, body: bytes, more_body: bool) -> None:
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
        elif self.chunked_encoding:
            data = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            if not more_body:
                data += b"0\r\n\r\n"
            if data:
                self.transport.write(data)
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            head = self._head
            if head is not None:
                self._head = None
                self.transport.write(head + body if body else head)
            elif body:
                self.transport.write(body)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.wake()
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
