"""The catch-all endpoint: match a route, run the policies, call the upstream, answer.

Streaming rule: once `http.response.start` has been sent, an upstream failure can no
longer become a problem answer. It is logged and the connection is closed without the
final chunk, so the client sees a truncated answer instead of a falsely complete one.

Request bodies: a route that may send the body more than once (retries, fallbacks,
shadow, cache key) reads it whole, bounded by its `max_body_bytes`; so do bodies with a
small declared length. Others stream to the upstream as they arrive, counted on the way.

A client that disconnects is noticed while its body is read, while the upstream call
runs (`gateway.disconnect`: the request is cancelled, its cleanups run at once) and while
a streamed answer is copied; the first two are logged with status 499, as nginx does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Sequence
from functools import partial
from typing import Any

import structlog
from starlette.types import Message, Receive, Scope, Send

from gateway.config.runtime import ConfigHolder
from gateway.context import RequestContext
from gateway.disconnect import DisconnectWatch, request_task
from gateway.errors import BadRequest, GatewayError, PayloadTooLarge, send_problem
from gateway.pipeline import Policy, PolicyPlan, run_pipeline
from gateway.proxy_response import ProxyResponse
from gateway.upstream import UpstreamClient

log = structlog.get_logger("gateway.proxy")

# Bodies declaring at most this many bytes are read whole even on streaming routes.
SMALL_BODY = 64 * 1024
CLIENT_CLOSED = 499  # nginx's status for a client that left before its answer


class ClientDisconnected(Exception):
    """The client went away before its request body arrived."""


class ProxyEndpoint:
    """Raw ASGI app for every path that is not the gateway's own (`gateway.endpoints`)."""

    def __init__(self, holder: ConfigHolder, policies: Sequence[Policy],
                 upstream: UpstreamClient):
        self.holder = holder
        self.plan = PolicyPlan(policies)
        self.upstream = upstream
        self.disconnects = DisconnectWatch()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        request_id: str = state.get("request_id", "")
        ctx = None
        started = False
        try:
            config = self.holder.current
            route, params = config.router.match(scope["method"], scope["path"])
            client = scope.get("client")
            ctx = RequestContext(
                request_id=request_id, config=config, route=route, path_params=params,
                method=scope["method"], path=scope["path"], query=scope["query_string"],
                headers=scope["headers"], client_ip=client[0] if client else "",
                started=time.perf_counter(),
            )
            state["ctx"] = ctx
            body = await self._request_body(ctx, receive)
            ctx.body = body if isinstance(body, bytes) else None
            if not isinstance(body, BodyStream):
                self.disconnects.arm(receive, ctx)  # a streamed body arms it at its end
            try:
                response = await run_pipeline(
                    self.plan.for_route(config, route), ctx,
                    lambda c: self.upstream.send(c, body or None))
            except GatewayError:
                if isinstance(body, BodyStream) and body.failure is not None:
                    raise body.failure from None
                raise
            finally:
                if isinstance(body, BodyStream):
                    # The upstream client may still be sending the body after its answer:
                    # its end must not watch a request that no longer waits on anything.
                    body.on_end = _nothing
                self.disconnects.disarm(receive)
            started = True
            await self._answer(ctx, response, receive, send)
        except ClientDisconnected:
            state["status"] = CLIENT_CLOSED
        except asyncio.CancelledError:
            if not self.disconnects.absorb():
                raise
            state["status"] = CLIENT_CLOSED  # nobody to answer; cleanups below run
        except Exception as exc:
            if not isinstance(exc, GatewayError):
                # A bug, not a client's or upstream's fault: log it, answer a bare 500.
                log.exception("unhandled_error", error=type(exc).__name__)
            if started:
                raise
            if ctx is not None:
                # Before the answer: a client retrying at once must find what this
                # request held (an Idempotency-Key's claim, a slot) already released.
                await _run_cleanups(ctx)
            await send_problem(send, exc, request_id,
                               ctx.response_headers if ctx is not None else ())
        finally:
            if ctx is not None:
                await _run_cleanups(ctx)

    async def _request_body(self, ctx: RequestContext, receive: Receive
                            ) -> bytes | BodyStream:
        limit = ctx.route.max_body_bytes
        declared = ctx.header(b"content-length")
        length = None
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise BadRequest(BadRequest.BAD_LENGTH) from None
            if length > limit:
                raise PayloadTooLarge(limit)
        if length is None and ctx.header(b"transfer-encoding") is None:
            length = 0  # no body framing: there is no body (RFC 9112 §6.3)
        small = length is not None and length <= SMALL_BODY
        # An Idempotency-Key's fingerprint covers the body: it is read whole too.
        if small or ctx.route.replays_body or ctx.header(b"idempotency-key") is not None:
            return await _read_whole(receive, limit)
        # The stream is read by the upstream client, maybe from another task: name ours.
        return BodyStream(receive, limit, partial(self.disconnects.arm, receive, ctx,
                                                  request_task()))

    async def _answer(self, ctx: RequestContext, response: ProxyResponse, receive: Receive,
                      send: Send) -> None:
        headers = response.headers
        if ctx.response_headers or response.extra_headers:
            headers = [*headers, *response.extra_headers, *ctx.response_headers]
        await send({"type": "http.response.start", "status": response.status,
                    "headers": headers})
        if response.body is not None:
            await send({"type": "http.response.body", "body": response.body})
            return
        assert response.stream is not None
        try:
            await _pump(response.stream, receive, send)
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            # Too late for a problem answer (see module docstring): log, then cut.
            log.warning("upstream_stream_failed", target=ctx.upstream_target,
                        error=type(exc).__name__)
        finally:
            if response.release is not None:
                await response.release()


async def _run_cleanups(ctx: RequestContext) -> None:
    """Run the request's cleanups once, whatever they raise.

    A cleanup that finishes without suspending (an in-memory release) runs inline: a
    cancellation cannot interrupt code that never awaits; a synchronous one (it returns
    None) needs no coroutine at all. One that suspends (a Redis call) is finished in a
    task of its own, shielded, so a cancellation of this request cannot cut it off
    half-way. Most requests so save a task and a loop iteration.
    """
    cleanups, ctx.cleanups = ctx.cleanups, []
    cancelled = None
    for cleanup in cleanups:
        try:
            coro = cleanup()
            if coro is None:
                continue
            try:
                waiting_on = coro.send(None)
            except StopIteration:
                continue
            await asyncio.shield(_resume(coro, waiting_on))
        except asyncio.CancelledError as exc:
            cancelled = exc  # the shielded one goes on; so do the cleanups after it
        except Exception:
            log.exception("cleanup_failed")
    if cancelled is not None:
        raise cancelled


async def _resume(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _Resumed(coro, waiting_on)


class _Resumed:
    """Awaitable that goes on with a coroutine already stepped once (what `await coro`
    would have done from there): `waiting_on` is what its first step yielded."""

    __slots__ = ("coro", "waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any):
        self.coro, self.waiting_on = coro, waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro, yielded = self.coro, self.waiting_on
        while True:
            try:
                sent = yield yielded
            except BaseException as exc:  # a cancellation, thrown into the coroutine
                try:
                    yielded = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration:
                    return


async def _read_whole(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _nothing() -> None:
    pass


class BodyStream:
    """The request body as it arrives, counted against the route's limit.

    The upstream client wraps errors raised while it reads a body, so the reason is kept
    here too.
    """

    def __init__(self, receive: Receive, limit: int, on_end: Callable[[], None]):
        self.receive, self.limit, self.on_end = receive, limit, on_end
        self.failure: GatewayError | ClientDisconnected | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.failure = ClientDisconnected()
                raise self.failure
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                self.failure = PayloadTooLarge(self.limit)
                raise self.failure
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                self.on_end()  # receive() is free now: watch for a disconnect
                return


async def _pump(stream: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
    """Copy chunks as they come; stop early if the client disconnects."""
    async def copy() -> None:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def watch() -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                return

    copier = asyncio.ensure_future(copy())
    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({copier, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (copier, watcher):
            task.cancel()
    if copier in done:
        copier.result()  # re-raise a failed copy for the caller to log
