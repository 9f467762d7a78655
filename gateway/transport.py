"""One upstream attempt over the wire: the one-method seam under the upstream client.

    Transport.send(UpstreamRequest) -> ProxyResponse     or raises AttemptFailed
    Transport.aclose()

The upstream client (`gateway.upstream`) decides targets, retries and fallbacks; a
transport only sends. `ReqwestTransport` is the production one. Unit tests of a policy or
of an upstream decision give the client a fake transport and need no sockets.

pyreqwest (Rust's reqwest/hyper) is the client on this hot path: on this machine it costs
about 47 us of CPU per proxied request against aiohttp's 95 us and httpx's ~300 us, and
httpx's pool collapses under concurrency (README, Performance; bench/compare_clients.py).
httpx serves the control path (health checks, JWKS).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder

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


class ReqwestTransport:
    """Pooled pyreqwest clients, one per distinct (connect, total) timeout pair, made on
    first use and kept: its connect and read timeouts are client settings, so routes
    with the same timeouts share one connection pool."""

    def __init__(self, pool_size: int = 512):
        self.pool_size = pool_size
        self._clients: dict[tuple[float, float], Client] = {}

    def _client(self, connect: float, total: float) -> Client:
        client = self._clients.get((connect, total))
        if client is None:
            client = self._clients[(connect, total)] = (
                ClientBuilder()
                .follow_redirects(False)
                # Bodies pass through as the upstream encoded them.
                .gzip(False).brotli(False).zstd(False).deflate(False)
                .connect_timeout(timedelta(seconds=connect))
                # Bounds silence inside a streamed answer. The deadline for the answer's
                # head (and small bodies) is send's; the margin lets that deadline fire
                # first, since the client reports a read timeout during the head as a
                # *connect* timeout, which would make a timed-out POST look resendable.
                .read_timeout(timedelta(seconds=total + READ_TIMEOUT_MARGIN))
                # Idle sockets go before common upstream keep-alive limits (uvicorn: 5 s),
                # so the pool does not hand out connections the upstream is closing.
                .pool_idle_timeout(timedelta(seconds=4))
                .max_connections(self.pool_size)
                .user_agent("ai-gateway")
                .build()
            )
        return client

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def send(self, request: UpstreamRequest) -> ProxyResponse:
        builder = (self._client(request.connect_timeout, request.total_timeout)
                   .request(request.method, request.url).headers(request.headers))
        body = request.body
        if isinstance(body, bytes):
            builder = builder.body_bytes(body)
        elif body is not None:
            builder = builder.body_stream(body)
        # No read-ahead: an SSE event must reach the client as soon as it arrives.
        streamed = builder.streamed_read_buffer_limit(0).build_streamed()
        entered = False
        try:
            async with asyncio.timeout(request.total_timeout):
                resp = await streamed.__aenter__()
                entered = True
                length_header = resp.get_header("content-length")
                length = int(length_header) if length_header is not None else None
                content_type = resp.get_header("content-type") or ""
                if (length is not None and length <= BUFFER_LIMIT
                        and not content_type.startswith("text/event-stream")):
                    data = bytes(await resp.bytes())
                    await streamed.__aexit__(None, None, None)
                    entered = False
                    headers_out = answer_headers(resp.headers.items())
                    headers_out.append((b"content-length", str(len(data)).encode()))
                    return ProxyResponse(resp.status, headers_out, body=data)
        except BaseException as exc:
            if entered:
                await streamed.__aexit__(None, None, None)
            raise _map_error(exc, request) from None
        headers_out = answer_headers(resp.headers.items())
        if length is not None:
            headers_out.append((b"content-length", str(length).encode()))

        async def chunks() -> AsyncIterator[bytes]:
            reader = resp.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                yield bytes(chunk)

        async def release() -> None:
            await streamed.__aexit__(None, None, None)

        return ProxyResponse(resp.status, headers_out, stream=chunks(), release=release)


def _map_error(exc: BaseException, request: UpstreamRequest) -> BaseException:
    """The one place client errors become gateway failures (anything else passes as is)."""
    if isinstance(exc, rq.ConnectTimeoutError):
        return AttemptFailed(Failure("connect", UpstreamTimeout(
            UpstreamTimeout.CONNECT.format(seconds=request.connect_timeout))))
    if isinstance(exc, rq.ConnectError):
        return AttemptFailed(Failure("connect", UpstreamError(UpstreamError.CONNECT_FAILED)))
    if isinstance(exc, TimeoutError):  # asyncio's deadline, or the client's read timeout
        return AttemptFailed(Failure("timeout", UpstreamTimeout(
            UpstreamTimeout.ANSWER.format(seconds=request.total_timeout))))
    if isinstance(exc, rq.RequestError):
        return AttemptFailed(Failure("reset", UpstreamError(UpstreamError.RESET)))
    return exc
