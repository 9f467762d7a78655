"""The upstream client: which target, whether to retry or fall back, and the one send.

    UpstreamClient.send(ctx, body)          fallback chain over the route's groups
      └── _send_with_retries(...)           retries with backoff and jitter within a group
            └── transport.send(...)         the only call out (`gateway.transport`)
Decisions are pure functions in `gateway.upstream_rules`, tested without I/O; with a fake
transport the whole client is too (tests/pipeline/).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import structlog

from gateway.config.runtime import CompiledGroup
from gateway.context import Attempt, RequestContext
from gateway.errors import RateLimited, ServiceUnavailable, UpstreamError
from gateway.proxy_response import ProxyResponse
from gateway.tracing import continue_trace
from gateway.transport import AttemptFailed, Body, Transport, UpstreamRequest
from gateway.upstream_health import TargetHealth
from gateway.upstream_rules import (
    Failure,
    backoff_delay,
    choose_target,
    forward_headers,
    may_fall_back,
    may_retry,
    retry_after_seconds,
    with_target_headers,
)

log = structlog.get_logger("gateway.upstream")
# A named tuple's own constructor is a Python function; tuple's is not (hot path only).
_tuple_new = tuple.__new__
# Failures after which an llm route tries the next group of its model, whatever the
# method: an answered 5xx, a provider's 429, or no usable target.
LLM_FALLBACK = frozenset({"status", "rate_limited", "unavailable", "connect"})
UPSTREAM_RATE_LIMITED = "every upstream of this model is rate limited (last: {group!r})"


class _GroupExhausted(Exception):
    def __init__(self, failure: Failure):
        self.failure = failure


class UpstreamClient:
    """Sends a request along its route's groups, through one `Transport`."""

    def __init__(
        self,
        health: TargetHealth,
        transport: Transport,
        *,
        rng: Callable[[], float] = random.random,
        shadow_max_in_flight: int = 64,
    ):
        self.health = health
        self.transport = transport
        self.rng = rng
        self.shadow_max_in_flight = shadow_max_in_flight
        self._shadows: set[asyncio.Task[None]] = set()
        self.shadow_dropped = 0  # exported as gateway_shadow_dropped_total

    async def close(self) -> None:
        for task in list(self._shadows):
            task.cancel()
        await self.transport.aclose()

    async def send(self, ctx: RequestContext, body: Body
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
        chain: tuple[tuple[CompiledGroup, Body], ...] = (
            ctx.chain or tuple((group, body) for group in route.groups))
        for i, (group, group_body) in enumerate(chain):
            if i:
                ctx.fallbacks = i
                log.info("upstream_fallback", route=route.name, group=group.name,
                         after=failure.kind if failure else "")
            try:
                return await self._send_with_retries(ctx, group, path, headers, group_body)
            except _GroupExhausted as exc:
                failure = exc.failure
                # An llm route moves to the next provider on an answered 429 or 5xx too:
                # nothing was generated, so nothing is lost by asking another.
                if not (may_fall_back(route.retry, ctx.method, failure)
                        or (route.llm is not None and failure.kind in LLM_FALLBACK)):
                    break
        assert failure is not None
        raise failure.error

    async def _send_with_retries(self, ctx: RequestContext, group: CompiledGroup, path: str,
                                 headers: list[tuple[str, str]],
                                 body: Body) -> ProxyResponse:
        plan = ctx.route.retry
        attempt, last_url = 0, None
        while True:
            target = choose_target(group, self.health.usable, self.rng(), last_url)
            if target is None:
                raise _GroupExhausted(Failure("unavailable", ServiceUnavailable(
                    ServiceUnavailable.NO_HEALTHY_TARGET.format(group=group.name),
                    retry_after=self.health.retry_after(group))))
            ctx.upstream_target = last_url = target.url
            self.health.begin(target.url)
            attempts = ctx.attempts
            started = time.perf_counter()
            try:
                response = await self.transport.send(_tuple_new(UpstreamRequest, (
                    ctx.method, target.url + path,
                    with_target_headers(headers, target) if target.headers else headers,
                    body, ctx.route.connect_timeout, ctx.route.total_timeout)))
            except AttemptFailed as exc:
                failure = exc.failure
            except asyncio.CancelledError:
                self.health.abandon(target.url)
                raise
            else:
                if response.status == 429 and ctx.route.llm is not None:
                    # The provider's own limit: park the target for its Retry-After and
                    # move on; not a health failure, so the circuit is left alone.
                    wait = retry_after_seconds(response.header(b"retry-after"))
                    self.health.park(target.url, wait)
                    self.health.abandon(target.url)
                    if response.release is not None:
                        await response.release()
                    attempts.append(Attempt(group.name, target.url,
                                            time.perf_counter() - started, "rate_limited"))
                    raise _GroupExhausted(Failure("rate_limited", RateLimited(
                        UPSTREAM_RATE_LIMITED.format(group=group.name), max(1, round(wait)))))
                if response.status < 500:
                    attempts.append(_tuple_new(Attempt, (group.name, target.url,
                                                         time.perf_counter() - started, "")))
                    self.health.record_success(target.url)
                    return response
                if response.release is not None:
                    try:
                        await response.release()
                    except asyncio.CancelledError:
                        # A client disconnect lands here too: a half-open probe left
                        # unfinished would keep its target out of service for good.
                        self.health.abandon(target.url)
                        raise
                failure = Failure("status", UpstreamError(
                    UpstreamError.ANSWERED.format(status=response.status)), response.status)
            attempts.append(Attempt(group.name, target.url, time.perf_counter() - started,
                                    failure.kind))
            self.health.record_failure(target.url, group.breaker)
            if not may_retry(plan, ctx.method, attempt, failure):
                raise _GroupExhausted(failure)
            attempt += 1
            log.info("upstream_retry", target=target.url, attempt=attempt, reason=failure.kind)
            await asyncio.sleep(backoff_delay(plan, attempt - 1, self.rng()))

    # -- shadow traffic ----------------------------------------------------------------

    def _start_shadow(self, ctx: RequestContext, group: CompiledGroup, path: str,
                      headers: list[tuple[str, str]],
                      body: Body) -> None:
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
            response = await self.transport.send(UpstreamRequest(
                ctx.method, target.url + path,
                with_target_headers(headers, target) if target.headers else headers,
                body, ctx.route.connect_timeout, ctx.route.total_timeout))
            if response.release is not None:
                await response.release()
            ok = response.status < 500
        except AttemptFailed:
            ok = False
        if ok:
            self.health.record_success(target.url)
        else:
            self.health.record_failure(target.url, group.breaker)
            log.info("shadow_failed", target=target.url)

