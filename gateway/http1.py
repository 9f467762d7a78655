"""The upstream connection: HTTP/1.1 keep-alive on the gateway's own event loop.

One `Http1Connection` is an asyncio protocol carrying one request at a time; its answer
is parsed by httptools (llhttp, the parser uvicorn's server side uses too). Running on
the loop that serves the client, a proxied call needs no thread hand-off: a client
library with its own I/O threads (wreq, pyreqwest) pays two cross-thread wake-ups and
GIL hand-overs per request, which measured as the largest single cost of a proxied
request (README, Performance). `gateway.transport.Http1Transport` pools these.

What it does not do, by choice: HTTP/2 and upgrades (inference backends speak HTTP/1.1
to a proxy; the gateway's SSE is chunked HTTP/1.1), pipelining, redirects, decoding.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable

import httptools

# A streamed answer's reader lets this much pile up before reading from the upstream
# pauses, so a slow client slows its upstream instead of filling the gateway's memory.
READ_AHEAD = 256 * 1024


class ConnectionLost(Exception):
    """The connection ended (or the answer could not be parsed) before the answer did."""


class Http1Connection(asyncio.Protocol):
    """One upstream connection; `begin` a request, `head` then `body` or `chunk`s."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False  # served a request before: a reused connection
        self._reset(head_only=False)
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._loop = asyncio.get_running_loop()

    def _reset(self, head_only: bool) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.got_bytes = False
        self.head_only = head_only  # HEAD: the answer has no body whatever it declares
        self.error: BaseException | None = None
        self._paused = False

    # -- asyncio.Protocol --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"unparseable answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.done and not self._framed():
            self.done = True  # an answer without framing ends where the connection does
            self._wake()
            return
        if not self.done:
            self._fail(ConnectionLost("connection closed before the answer ended"))
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionLost("connection closed while sending"))

    def pause_writing(self) -> None:
        self._drain = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        self._drain = None

    # -- httptools callbacks -----------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # 100 Continue and friends: the real answer follows
            self.headers = []
            return
        self.status = status
        self.head_done = True
        if self.head_only:  # llhttp would wait for the body a HEAD answer declares
            self.done = True
            self.keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.done:
            return  # a HEAD answer's declared body never comes; anything else is junk
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > READ_AHEAD and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.head_done:
            return  # the end of an informational (1xx) answer
        if not self.done:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- the request -------------------------------------------------------------------
    def begin(self, head: bytes, body: bytes | None, head_only: bool) -> None:
        self._reset(head_only)
        assert self.transport is not None
        self.transport.write(head + body if body else head)

    async def write(self, data: bytes) -> None:
        """Write a part of a streamed body, waiting while the upstream reads slowly."""
        if self.closed or self.transport is None:
            raise ConnectionLost("connection closed while sending")
        self.transport.write(data)
        if self._drain is not None:
            await self._drain

    async def body(self) -> bytes:
        while not self.done:
            await self._wait()
        return self.whole_body()

    def whole_body(self) -> bytes:
        """The body of an answer that is `done` (without a coroutine: a small answer
        usually ends in the read that brought its head)."""
        if self.error is not None:
            raise self.error
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data

    async def chunk(self) -> bytes | None:
        """The next part of the answer's body, None at its end."""
        while not self.chunks:
            if self.done:
                if self.error is not None:
                    raise self.error
                return None
            await self._wait()
        data = self.chunks.popleft()
        self.buffered -= len(data)
        if self._paused and self.buffered <= READ_AHEAD // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data

    def reusable(self) -> bool:
        return self.done and self.keep_alive and not self.closed and not self.chunks

    def abort(self) -> None:
        """Drop the connection at once (an unfinished request, or one nobody waits on)."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def mark_idle(self) -> None:
        self.used = True
        self.idle_since = time.monotonic()

    # -- internals ---------------------------------------------------------------------
    def _framed(self) -> bool:
        for name, _ in self.headers:  # noqa: SIM110 (a loop: any() adds a generator)
            if name in (b"content-length", b"transfer-encoding"):
                return True
        return False

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.done = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def next_event(self) -> asyncio.Future[None]:
        """What to await for the answer's next event (its head, a part of its body, its
        end, a failure); the awaiting caller checks `error` after. A plain method, not a
        coroutine: the upstream call awaits the future itself, one frame less a wait."""
        if self.error is not None:
            raise self.error
        self._waiter = waiter = self._loop.create_future()
        return waiter

    async def _wait(self) -> None:
        await self.next_event()
        if self.error is not None:
            raise self.error


# -- the request's head and body ---------------------------------------------------------
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def request_head(method: str, target: str, authority: str, headers: list[tuple[str, str]],
                 length: int | None) -> bytes:
    """The request line and headers; `length` None means a chunked body follows."""
    lines = [f"{method} {target} HTTP/1.1\r\nhost: {authority}\r\n"]
    agent = False
    for name, value in headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            continue  # a value must never start a header of its own
        if not agent and name.lower() == "user-agent":
            agent = True
        lines.append(f"{name}: {value}\r\n")
    if not agent:
        lines.append("user-agent: ai-gateway\r\n")
    if length is None:
        lines.append("transfer-encoding: chunked\r\n\r\n")
    elif length or method in _BODY_METHODS:
        lines.append(f"content-length: {length}\r\n\r\n")
    else:
        lines.append("\r\n")
    return "".join(lines).encode("latin-1")


async def send_chunked(conn: Http1Connection, body: AsyncIterable[bytes]) -> None:
    """Stream a body as it arrives (chunked). A failure of the body itself (too large,
    client gone) ends the attempt as a lost connection; the proxy keeps the reason."""
    try:
        async for chunk in body:
            if chunk:
                await conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except (ConnectionLost, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise ConnectionLost(f"request body: {type(exc).__name__}") from exc
    await conn.write(b"0\r\n\r\n")


def content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def is_event_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            return value.startswith(b"text/event-stream")
    return False
