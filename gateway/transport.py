"""One upstream attempt over the wire: the one-method seam under the upstream client.

    Transport.send(UpstreamRequest) -> ProxyResponse     or raises AttemptFailed
    Transport.aclose()

The upstream client (`gateway.upstream`) decides targets, retries and fallbacks; a
transport only sends. `Http1Transport` is the production one. Unit tests of a policy or
of an upstream decision give the client a fake transport and need no sockets.

`Http1Transport` speaks HTTP/1.1 on the event loop that serves the client
(`gateway.http1`): no thread hand-off per call, which measured as the largest single
cost of a proxied request with the Rust clients tried before (README, Performance).
Cancelling a send aborts its connection, so an upstream call whose client went away
stops at the upstream too. httpx serves the control path (health checks, JWKS).
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

import certifi

from gateway.connection_cap import ConnectionCap
from gateway.deadline import Deadline
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.http1 import (
    ConnectionLost,
    Http1Connection,
    content_length,
    is_event_stream,
    request_head,
    send_chunked,
)
from gateway.proxy_response import ProxyResponse
from gateway.upstream_rules import Failure, answer_headers

# Answers up to this size are read whole (one write to the client, cacheable);
# larger, unsized and SSE answers stream through.
BUFFER_LIMIT = 256 * 1024
READ_TIMEOUT_MARGIN = 0.5  # seconds
# RFC 9110 §9.2.2: a request of these methods may be sent again on a new connection
# when a pooled one closed before any of the answer came (an upstream closing an idle
# connection as the request went out); a POST never is.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})

Body = bytes | AsyncIterable[bytes] | None
Origin = tuple[str, str, int, ssl.SSLContext | None]  # host header, host, port, TLS


class UpstreamRequest(NamedTuple):
    """What one attempt sends: the route's timeouts come along for the client to apply.
    (A named tuple: the upstream client builds one per attempt with `tuple.__new__`,
    no Python constructor call.)"""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: Body
    connect_timeout: float
    total_timeout: float


class AttemptFailed(Exception):
    """Raised by a transport when an attempt got no answer (connect, timeout, reset)."""

    def __init__(self, failure: Failure):
        super().__init__(failure.kind)
        self.failure = failure


class Transport(Protocol):
    async def send(self, request: UpstreamRequest) -> ProxyResponse:
        """The upstream's answer (any status), or AttemptFailed."""
        ...

    async def aclose(self) -> None: ...


class Http1Transport:
    """HTTP/1.1 keep-alive connections pooled per origin, at most `pool_size` in use at
    once (from the send until the answer is read or its stream released). Idle ones are
    kept up to `IDLE_SECONDS`, under common upstream keep-alive limits (uvicorn: 5 s), so
    the pool does not hand out connections the upstream is closing."""

    IDLE_SECONDS = 4.0

    def __init__(self, pool_size: int = 512, tls: ssl.SSLContext | None = None):
        self.pool_size = pool_size
        self._idle: dict[str, list[Http1Connection]] = {}
        self._in_use = ConnectionCap(pool_size)
        self._origins: dict[str, Origin] = {}
        # https upstreams: certifi's roots, as httpx (the control path) has them.
        self._tls = tls

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    async def send(self, request: UpstreamRequest) -> ProxyResponse:
        scheme, _, rest = request.url.partition("://")
        authority, slash, path = rest.partition("/")
        origin_key = f"{scheme}://{authority}"
        origin = self._origins.get(origin_key) or self._origin(origin_key)
        body = request.body
        if body is None or isinstance(body, bytes):
            streamed, length = False, len(body) if body else 0
        else:
            streamed, length = True, None  # chunked
        head = request_head(request.method, slash + path if slash else "/", origin[0],
                            request.headers, length)
        slots = self._in_use
        conn: Http1Connection | None = None
        held = False
        deadline = Deadline(request.total_timeout)  # until the answer is read or streams
        try:
            if not slots.take():  # at once while below the cap
                await slots.wait()
            held = True
            conn = self._pooled(origin_key)
            if conn is None:
                conn = await self._connect(origin_key, origin, request.connect_timeout)
            try:
                if streamed:
                    await self._exchange(conn, request, head)
                else:  # _exchange, inline: one coroutine less for the usual request
                    conn.begin(head, body, request.method == "HEAD")  # type: ignore[arg-type]
                    while not conn.head_done:
                        await conn.next_event()
                        if conn.error is not None:
                            raise conn.error
            except ConnectionLost:
                if not (conn.used and not conn.got_bytes and not streamed
                        and request.method in IDEMPOTENT):
                    raise
                conn = await self._connect(origin_key, origin, request.connect_timeout)
                await self._exchange(conn, request, head)
            length = content_length(conn.headers)
            # An event stream always streams (the LLM usage reader follows its events),
            # even one whose events all came at once.
            if (conn.done or (length is not None and length <= BUFFER_LIMIT)) \
                    and not is_event_stream(conn.headers):
                data = conn.whole_body() if conn.done else await conn.body()
                deadline.end()
                answered, conn = conn, None
                self._give_back(answered)
                held = False
                slots.give()
                headers_out = answer_headers(answered.headers)
                headers_out.append((b"content-length", str(len(data)).encode()))
                return ProxyResponse(answered.status, headers_out, body=data)
        except BaseException as exc:
            if deadline.end() and isinstance(exc, asyncio.CancelledError):
                exc = TimeoutError()  # the answer's deadline, not a cancellation
            if held:
                slots.give()
            if conn is not None:
                conn.abort()  # unfinished: the upstream sees the connection close
            raise _map_error(exc, request) from None
        deadline.end()
        return self._streamed(conn, length, request.total_timeout + READ_TIMEOUT_MARGIN)

    @staticmethod
    async def _exchange(conn: Http1Connection, request: UpstreamRequest, head: bytes
                        ) -> None:
        """Send the request; return once the answer's head is in."""
        body = request.body
        if body is None or isinstance(body, bytes):
            conn.begin(head, body, request.method == "HEAD")
        else:
            conn.begin(head, None, request.method == "HEAD")
            await send_chunked(conn, body)
        while not conn.head_done:
            await conn.next_event()
            if conn.error is not None:
                raise conn.error

    def _origin(self, key: str) -> Origin:
        parts = urlsplit(key)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AttemptFailed(Failure("connect", UpstreamError(UpstreamError.CONNECT_FAILED)))
        tls = None
        if parts.scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context(cafile=certifi.where())
            tls = self._tls
        origin = self._origins[key] = (parts.netloc, parts.hostname, parts.port
                                       or (443 if tls else 80), tls)
        return origin

    async def _connect(self, key: str, origin: Origin, seconds: float) -> Http1Connection:
        loop = asyncio.get_running_loop()
        _, host, port, tls = origin
        try:
            async with asyncio.timeout(seconds):
                _, conn = await loop.create_connection(lambda: Http1Connection(key),
                                                       host, port, ssl=tls)
        except TimeoutError:
            raise AttemptFailed(Failure("connect", UpstreamTimeout(
                UpstreamTimeout.CONNECT.format(seconds=seconds)))) from None
        except OSError:
            raise AttemptFailed(Failure("connect", UpstreamError(
                UpstreamError.CONNECT_FAILED))) from None
        return conn

    def _pooled(self, key: str) -> Http1Connection | None:
        conns = self._idle.get(key)
        if not conns:
            return None
        oldest = time.monotonic() - self.IDLE_SECONDS
        while conns:
            conn = conns.pop()  # the most recently used: the least likely to be closing
            if not conn.closed and conn.idle_since > oldest and not _readable(conn):
                return conn
            conn.close()
        return None

    def _give_back(self, conn: Http1Connection) -> None:
        if conn.reusable():
            conn.mark_idle()
            conns = self._idle.setdefault(conn.origin, [])
            if len(conns) < self.pool_size:
                conns.append(conn)
                return
        conn.close()

    def _streamed(self, conn: Http1Connection, length: int | None, silence: float
                  ) -> ProxyResponse:
        slots = self._in_use
        held = True
        headers_out = answer_headers(conn.headers)
        if length is not None:
            headers_out.append((b"content-length", str(length).encode()))

        def free() -> None:
            nonlocal held
            if held:
                held = False
                slots.give()

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    try:  # bounds silence inside the answer, as a read timeout would
                        async with asyncio.timeout(silence):
                            chunk = await conn.chunk()
                    except TimeoutError:
                        raise UpstreamTimeout(UpstreamTimeout.ANSWER.format(
                            seconds=silence)) from None
                    if chunk is None:
                        self._give_back(conn)
                        return
                    yield chunk
            finally:
                if not conn.done:
                    conn.abort()
                free()  # also when a stream nobody released is garbage-collected

        async def release() -> None:
            free()
            if not conn.done:
                conn.abort()  # a connection with an unread body is closed, not pooled

        return ProxyResponse(conn.status, headers_out, stream=chunks(), release=release)


def _readable(conn: Http1Connection) -> bool:
    """Whether an idle connection has something to read: its upstream's close, most
    likely, not yet seen by the loop (an idle connection owes nothing else)."""
    sock = conn.transport.get_extra_info("socket") if conn.transport is not None else None
    if sock is None:
        return False
    try:
        return bool(select.select([sock.fileno()], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _map_error(exc: BaseException, request: UpstreamRequest) -> BaseException:
    """The one place connection errors become gateway failures (others pass as is)."""
    if isinstance(exc, TimeoutError):  # the answer's deadline
        return AttemptFailed(Failure("timeout", UpstreamTimeout(
            UpstreamTimeout.ANSWER.format(seconds=request.total_timeout))))
    if isinstance(exc, (ConnectionLost, ConnectionError)):
        return AttemptFailed(Failure("reset", UpstreamError(UpstreamError.RESET)))
    return exc
