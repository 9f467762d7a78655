"""One upstream attempt over the wire: the one-method seam under the upstream client.

    Transport.send(UpstreamRequest) -> ProxyResponse     or raises AttemptFailed
    Transport.aclose()

The upstream client (`gateway.upstream`) decides targets, retries and fallbacks; a
transport only sends. `WreqTransport` is the production one. Unit tests of a policy or
of an upstream decision give the client a fake transport and need no sockets.

wreq (Rust's hyper underneath) is the client on this hot path: it costs the fewest
instructions per request of the clients measured (bench/compare_clients.py; README,
Performance), and cancelling an await on it drops the request, closing its connection, so
an upstream call whose client went away is aborted, not left running. httpx serves the
control path (health checks, JWKS).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import wreq
import wreq.exceptions as wx
from wreq.header import HeaderMap
from wreq.redirect import Policy

from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.proxy_response import ProxyResponse
from gateway.upstream_rules import Failure, answer_headers

# Answers up to this size are read whole (one write to the client, cacheable);
# larger, unsized and SSE answers stream through.
BUFFER_LIMIT = 256 * 1024
READ_TIMEOUT_MARGIN = 0.5  # seconds

Body = bytes | AsyncIterable[bytes] | None


@dataclass(slots=True)
class UpstreamRequest:
    """What one attempt sends: the route's timeouts come along for the client to apply."""

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


class WreqTransport:
    """Pooled wreq clients, one per distinct (connect, total) timeout pair, made on first
    use and kept: its connect and read timeouts are client settings, so routes with the
    same timeouts share one connection pool."""

    def __init__(self, pool_size: int = 512):
        self.pool_size = pool_size
        self._clients: dict[tuple[float, float], wreq.Client] = {}
        # The client's pool size bounds idle connections only; this bounds those in use
        # (from the send until the answer is read or its stream released).
        self._in_use = asyncio.Semaphore(pool_size)

    def _client(self, connect: float, total: float) -> wreq.Client:
        client = self._clients.get((connect, total))
        if client is None:
            client = self._clients[(connect, total)] = wreq.Client(
                redirect=Policy.none(),
                # Bodies pass through as the upstream encoded them.
                gzip=False, brotli=False, zstd=False, deflate=False,
                connect_timeout=timedelta(seconds=connect),
                # Bounds silence inside a streamed answer. The deadline for the answer's
                # head (and small bodies) is send's; the margin lets that one fire first.
                read_timeout=timedelta(seconds=total + READ_TIMEOUT_MARGIN),
                # Idle sockets go before common upstream keep-alive limits (uvicorn: 5 s),
                # so the pool does not hand out connections the upstream is closing.
                pool_idle_timeout=timedelta(seconds=4),
                pool_max_size=self.pool_size,
                user_agent="ai-gateway",
            )
        return client

    async def aclose(self) -> None:
        # wreq closes a client's pooled connections when the client is dropped.
        self._clients.clear()

    async def send(self, request: UpstreamRequest) -> ProxyResponse:
        client = self._client(request.connect_timeout, request.total_timeout)
        body = request.body
        sent: bytes | AsyncIterator[bytes] | None = (
            body if body is None or isinstance(body, bytes) else _generator(body))
        resp: wreq.Response | None = None
        slots = self._in_use
        held = False
        try:
            async with asyncio.timeout(request.total_timeout):
                await slots.acquire()  # at once while below the cap
                held = True
                # Cancelling this await (deadline, client gone) drops the request in
                # the client: its connection is closed, so the upstream sees it.
                resp = await client.request(_METHODS[request.method], request.url,
                                            headers=_header_map(request.headers), body=sent)
                length_header = resp.headers.get("content-length")
                length = int(length_header) if length_header is not None else None
                content_type = resp.headers.get("content-type")
                if (length is not None and length <= BUFFER_LIMIT
                        and (content_type is None
                             or not bytes(content_type).startswith(b"text/event-stream"))):
                    data = bytes(await resp.bytes())
                    held = False
                    slots.release()
                    headers_out = answer_headers(resp.headers)
                    headers_out.append((b"content-length", str(len(data)).encode()))
                    return ProxyResponse(resp.status.as_int(), headers_out, body=data)
        except BaseException as exc:
            if held:
                slots.release()
            if resp is not None:
                await resp.close()
            raise _map_error(exc, request) from None
        headers_out = answer_headers(resp.headers)
        if length is not None:
            headers_out.append((b"content-length", str(length).encode()))
        streamed = resp

        def free() -> None:
            nonlocal held
            if held:
                held = False
                slots.release()

        async def chunks() -> AsyncIterator[bytes]:
            try:
                # No read-ahead: an SSE event reaches the client as soon as it arrives.
                async with streamed.stream() as stream:
                    async for chunk in stream:
                        yield bytes(chunk)
            finally:
                free()  # also when a stream nobody released is garbage-collected

        async def release() -> None:
            free()
            await streamed.close()  # a connection with an unread body is closed, not pooled

        return ProxyResponse(resp.status.as_int(), headers_out, stream=chunks(),
                             release=release)


_METHODS = {name: getattr(wreq.Method, name)
            for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")}


def _header_map(headers: list[tuple[str, str]]) -> dict[str, str] | HeaderMap:
    """A dict when every name is distinct (the usual case, and the cheaper one to pass),
    otherwise a multi-valued map so that a repeated header is sent as often as received."""
    as_dict = dict(headers)
    if len(as_dict) == len(headers):
        return as_dict
    multi = HeaderMap()
    for name, value in headers:
        multi.append(name, value)
    return multi


async def _generator(body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in body:  # the client takes async generators, not any iterable
        yield chunk


def _map_error(exc: BaseException, request: UpstreamRequest) -> BaseException:
    """The one place client errors become gateway failures (anything else passes as is)."""
    if isinstance(exc, wx.ConnectionError):  # the request never left: refused, timed out
        if "TimedOut" in str(exc):
            return AttemptFailed(Failure("connect", UpstreamTimeout(
                UpstreamTimeout.CONNECT.format(seconds=request.connect_timeout))))
        return AttemptFailed(Failure("connect", UpstreamError(UpstreamError.CONNECT_FAILED)))
    if isinstance(exc, (TimeoutError, wx.TimeoutError)):  # the deadline, or a read timeout
        return AttemptFailed(Failure("timeout", UpstreamTimeout(
            UpstreamTimeout.ANSWER.format(seconds=request.total_timeout))))
    if isinstance(exc, (wx.RequestError, wx.BodyError, wx.ConnectionResetError)):
        return AttemptFailed(Failure("reset", UpstreamError(UpstreamError.RESET)))
    return exc
