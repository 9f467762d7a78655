"""The upstream client: which target, whether to retry or fall back, and the one send.

    UpstreamClient.send(ctx, body)          fallback chain over the route's groups
      └── _send_with_retries(...)           retries with backoff and jitter within a group
            └── _send_once(...)             the only call into the HTTP client
Decisions are pure functions in `gateway.upstream_rules`, tested without I/O.

pyreqwest (Rust's reqwest/hyper) is the client on this hot path: on this machine it costs
about 47 us of CPU per proxied request against aiohttp's 95 us and httpx's ~300 us, and
httpx's pool collapses under concurrency (README, Performance; bench/compare_clients.py).
httpx serves the control path (health checks, JWKS).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import timedelta

import structlog
from pyreqwest import exceptions as rq
from pyreqwest.client import Client, ClientBuilder

from gateway.config.runtime import CompiledGroup, CompiledRoute
from gateway.context import RequestContext
from gateway.errors import ServiceUnavailable, UpstreamError, UpstreamTimeout
from gateway.proxy_response import ProxyResponse
from gateway.tracing import continue_trace
from gateway.upstream_health import TargetHealth
from gateway.upstream_rules import (
    Attempt,
    Failure,
    answer_headers,
    backoff_delay,
    choose_target,
    forward_headers,
    may_fall_back,
    may_retry,
)

log = structlog.get_logger("gateway.upstream")

# Answers up to this size are read whole (one write to the client, cacheable);
# larger, unsized and SSE answers stream through.
BUFFER_LIMIT = 256 * 1024
READ_TIMEOUT_MARGIN = 0.5  # seconds


# -- the client ----------------------------------------------------------------------------

class _GroupExhausted(Exception):
    def __init__(self, failure: Failure):
        self.failure = failure


class UpstreamClient:
    """Sends a request along its route's groups; owns the pooled HTTP clients.

    One pyreqwest client per distinct (connect, total) timeout pair, made on first use
    and kept: its connect and read timeouts are client settings. Routes with the same
    timeouts share one connection pool.
    """

    def __init__(
        self,
        health: TargetHealth,
        *,
        pool_size: int = 512,
        rng: Callable[[], float] = random.random,
        shadow_max_in_flight: int = 64,
    ):
        self.health = health
        self.pool_size = pool_size
        self.rng = rng
        self.shadow_max_in_flight = shadow_max_in_flight
        self._shadows: set[asyncio.Task[None]] = set()
        self._clients: dict[tuple[float, float], Client] = {}
        self.shadow_dropped = 0

    def _client(self, route: CompiledRoute) -> Client:
        key = (route.connect_timeout, route.total_timeout)
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = (
                ClientBuilder()
                .follow_redirects(False)
                # Bodies pass through as the upstream encoded them.
                .gzip(False).brotli(False).zstd(False).deflate(False)
                .connect_timeout(timedelta(seconds=route.connect_timeout))
                # Bounds silence inside a streamed answer. The deadline for the answer's
                # head (and small bodies) is _send_once's; the margin lets that deadline
                # fire first, since the client reports a read timeout during the head as
                # a *connect* timeout, which would make a timed-out POST look resendable.
                .read_timeout(timedelta(seconds=route.total_timeout + READ_TIMEOUT_MARGIN))
                # Idle sockets go before common upstream keep-alive limits (uvicorn: 5 s),
                # so the pool does not hand out connections the upstream is closing.
                .pool_idle_timeout(timedelta(seconds=4))
                .max_connections(self.pool_size)
                .user_agent("ai-gateway")
                .build()
            )
        return client

    async def close(self) -> None:
        for task in list(self._shadows):
            task.cancel()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    async def send(self, ctx: RequestContext, body: bytes | AsyncIterable[bytes] | None
                   ) -> ProxyResponse:
        route = ctx.route
        traceparent, ctx.trace_id = continue_trace(ctx.header(b"traceparent"))
        headers = forward_headers(ctx, traceparent)
        path = route.upstream_path(ctx.path, ctx.path_params)
        if ctx.query:
            path += "?" + ctx.query.decode("latin-1")
        if route.shadow is not None and self.rng() * 100 < route.shadow_percent:
            self._start_shadow(ctx, route.shadow, path, headers, body)
        failure: Failure | None = None
        for i, group in enumerate(route.groups):
            if i:
                ctx.extra["fallbacks"] = i
                log.info("upstream_fallback", route=route.name, group=group.name,
                         after=failure.kind if failure else "")
            try:
                return await self._send_with_retries(ctx, group, path, headers, body)
            except _GroupExhausted as exc:
                failure = exc.failure
                if not may_fall_back(route.retry, ctx.method, failure):
                    break
        assert failure is not None
        raise failure.error

    async def _send_with_retries(self, ctx: RequestContext, group: CompiledGroup, path: str,
                                 headers: list[tuple[str, str]],
                                 body: bytes | AsyncIterable[bytes] | None) -> ProxyResponse:
        plan = ctx.route.retry
        attempt, last_url = 0, None
        while True:
            target = choose_target(group, self.health.usable, self.rng(), last_url)
            if target is None:
                raise _GroupExhausted(Failure("unavailable", ServiceUnavailable(
                    f"no healthy upstream in group {group.name!r}",
                    retry_after=self.health.retry_after(group))))
            ctx.upstream_target = last_url = target.url
            self.health.begin(target.url)
            attempts = ctx.extra.setdefault("upstream_attempts", [])
            started = time.perf_counter()
            try:
                response = await self._send_once(ctx, target.url + path, headers, body)
            except _AttemptFailed as exc:
                failure = exc.failure
            else:
                if response.status < 500:
                    attempts.append(Attempt(group.name, target.url,
                                            time.perf_counter() - started, ""))
                    self.health.record_success(target.url)
                    return response
                if response.release is not None:
                    await response.release()
                failure = Failure("status", UpstreamError(
                    f"upstream answered {response.status}"), response.status)
            attempts.append(Attempt(group.name, target.url, time.perf_counter() - started,
                                    failure.kind))
            self.health.record_failure(target.url, group.breaker)
            if not may_retry(plan, ctx.method, attempt, failure):
                raise _GroupExhausted(failure)
            ctx.extra["retries"] = attempt = attempt + 1
            log.info("upstream_retry", target=target.url, attempt=attempt, reason=failure.kind)
            await asyncio.sleep(backoff_delay(plan, attempt - 1, self.rng()))

    async def _send_once(self, ctx: RequestContext, url: str, headers: list[tuple[str, str]],
                         body: bytes | AsyncIterable[bytes] | None) -> ProxyResponse:
        route = ctx.route
        builder = self._client(route).request(ctx.method, url).headers(headers)
        if isinstance(body, bytes):
            builder = builder.body_bytes(body)
        elif body is not None:
            builder = builder.body_stream(body)
        # No read-ahead: an SSE event must reach the client as soon as it arrives.
        request = builder.streamed_read_buffer_limit(0).build_streamed()
        entered = False
        try:
            async with asyncio.timeout(route.total_timeout):
                resp = await request.__aenter__()
                entered = True
                length_header = resp.get_header("content-length")
                length = int(length_header) if length_header is not None else None
                content_type = resp.get_header("content-type") or ""
                if (length is not None and length <= BUFFER_LIMIT
                        and not content_type.startswith("text/event-stream")):
                    data = bytes(await resp.bytes())
                    await request.__aexit__(None, None, None)
                    entered = False
                    headers_out = answer_headers(resp.headers.items())
                    headers_out.append((b"content-length", str(len(data)).encode()))
                    return ProxyResponse(resp.status, headers_out, body=data)
        except BaseException as exc:
            if entered:
                await request.__aexit__(None, None, None)
            raise _map_error(exc, route) from None
        headers_out = answer_headers(resp.headers.items())
        if length is not None:
            headers_out.append((b"content-length", str(length).encode()))

        async def chunks() -> AsyncIterator[bytes]:
            reader = resp.body_reader
            while (chunk := await reader.read_chunk()) is not None:
                yield bytes(chunk)

        async def release() -> None:
            await request.__aexit__(None, None, None)

        return ProxyResponse(resp.status, headers_out, stream=chunks(), release=release)

    # -- shadow traffic ----------------------------------------------------------------

    def _start_shadow(self, ctx: RequestContext, group: CompiledGroup, path: str,
                      headers: list[tuple[str, str]],
                      body: bytes | AsyncIterable[bytes] | None) -> None:
        if len(self._shadows) >= self.shadow_max_in_flight or not isinstance(body, bytes | None):
            self.shadow_dropped += 1
            return
        task = asyncio.create_task(self._shadow(ctx, group, path, headers, body))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _shadow(self, ctx: RequestContext, group: CompiledGroup, path: str,
                      headers: list[tuple[str, str]], body: bytes | None) -> None:
        """Best effort: the answer is read and dropped; failures only feed the breaker."""
        target = choose_target(group, self.health.usable, self.rng())
        if target is None:
            return
        try:
            response = await self._send_once(ctx, target.url + path, headers, body)
            if response.release is not None:
                await response.release()
            ok = response.status < 500
        except _AttemptFailed:
            ok = False
        if ok:
            self.health.record_success(target.url)
        else:
            self.health.record_failure(target.url, group.breaker)
            log.info("shadow_failed", target=target.url)


def _map_error(exc: BaseException, route: CompiledRoute) -> BaseException:
    """The one place client errors become gateway failures (anything else passes as is)."""
    if isinstance(exc, rq.ConnectTimeoutError):
        return _AttemptFailed(Failure("connect", UpstreamTimeout(
            f"could not connect within {route.connect_timeout}s")))
    if isinstance(exc, rq.ConnectError):
        return _AttemptFailed(Failure("connect", UpstreamError(
            "could not connect to the upstream")))
    if isinstance(exc, TimeoutError):  # asyncio's deadline, or the client's read timeout
        return _AttemptFailed(Failure("timeout", UpstreamTimeout(
            f"no answer within {route.total_timeout}s")))
    if isinstance(exc, rq.RequestError):
        return _AttemptFailed(Failure("reset", UpstreamError(
            "the upstream closed the connection")))
    return exc


class _AttemptFailed(Exception):
    def __init__(self, failure: Failure):
        self.failure = failure
