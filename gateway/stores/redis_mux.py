"""One pipelined Redis connection for the stores' own commands (the request hot path).

A limited request makes one Redis call before the upstream (charge.lua) and, with
an in-flight cap, one after it (ZREM, sent unanswered: `execute_unanswered`); a cached
route one GET. Through redis-py 8 each call pays its per-command layers (pool checkout,
retry wrapper, event dispatch, observability recorder) before a byte moves; here a call
is one packed write and one future (`bench/bench_redis_charge.py` measures both clients).

Redis answers one connection's commands strictly in order, so every caller shares one
connection: each call appends a future to a FIFO and writes its command; replies resolve
the futures in turn (the multiplexer model of StackExchange.Redis and ioredis). Hence:
  - cancellation is safe: a caller that stops waiting leaves its future behind, and its
    reply is read and dropped when it comes, so the stream never desyncs;
  - a deadline needs no timer per call: replies come in order, so when the oldest waiter
    is overdue the connection is stuck; it is aborted, every waiter fails with redis-py's
    TimeoutError (mapped by the `StoreBreaker` like any Redis error), and the next call
    reconnects;
  - a lost connection fails every waiter with ConnectionError, and the next call
    reconnects; callers arriving during a connect share that one attempt.
Every failure reaches callers as a redis-py exception, which the breaker maps. One
dropped connection fails every call in flight on it, and each counts toward opening the
breaker (a dead Redis is detected at once). A client belongs to the event loop it first
connected on. Only commands that answer at once belong here (no blocking commands, no
MULTI, no pub/sub); redis-py stays the client for the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import hiredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.stores.redis_url import connection_options, is_tls, tls_context

log = structlog.get_logger("gateway.stores")
# (deadline, future); no future: a reply nobody waits for (`execute_unanswered`)
Waiter = tuple[float, "asyncio.Future[Any] | None"]
Arg = str | bytes | int | float


class _Link(asyncio.Protocol):
    """One connection: writes commands, resolves waiters with replies in order."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.reader = hiredis.Reader()
        self.waiters: deque[Waiter] = deque()
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.closed = False
        self.ready = False  # connected and through the handshake
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = self.loop.create_future()
        self._write(packed, fut)
        return fut

    def _write(self, packed: bytes, fut: asyncio.Future[Any] | None) -> None:
        if self.closed:  # lost between the caller's check and now: nothing would answer
            raise RedisConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        if loop is not self.loop:  # nothing on this loop would ever read its reply
            raise RedisConnectionError("Redis client used from another event loop")
        self.transport.write(packed)  # no reply can be read before the append below
        self.waiters.append((time.monotonic() + self.timeout, fut))
        if self._watch is None:
            self._watch = loop.call_later(self.timeout, self._check_deadline)

    def data_received(self, data: bytes) -> None:
        reader, waiters = self.reader, self.waiters
        reader.feed(data)
        while True:
            try:
                reply = reader.gets()
            except hiredis.ProtocolError:
                self.abort(RedisConnectionError("Redis sent a malformed reply"))
                return
            if reply is False:  # hiredis' "no whole reply yet"
                return
            if not waiters:  # a reply nobody asked for: the stream is not ours to read
                self.abort(RedisConnectionError("unexpected reply from Redis"))
                return
            fut = waiters.popleft()[1]
            if fut is not None and not fut.done():  # else nobody waits: it is dropped
                fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _check_deadline(self) -> None:
        self._watch = None
        if not self.waiters or self.closed:
            return
        overdue = self.waiters[0][0] - time.monotonic()
        if overdue <= 0:
            self.abort(RedisTimeoutError("Redis did not answer in time"))
            return
        self._watch = asyncio.get_running_loop().call_later(overdue, self._check_deadline)

    def abort(self, exc: Exception, expected: bool = False) -> None:
        """Close at once and fail every waiter with `exc` (idempotent). An established
        connection lost unexpectedly is logged once (the breaker logs outages)."""
        if not self.closed and self.ready and not expected:
            # An idle connection closed by the server (its `timeout`) costs nobody a call.
            report = log.warning if self.waiters else log.info
            report("redis_connection_lost", reason=str(exc), in_flight=len(self.waiters))
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        try:
            while self.waiters:
                fut = self.waiters.popleft()[1]
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
        finally:
            if self.transport is not None:
                self.transport.abort()


Locate = Callable[[], Awaitable[tuple[str, int]]]


class MuxRedis:
    """Commands over one shared, pipelined connection to the Redis at `url`.

    With `locate` (Sentinel: redis_ha.py), each connect asks it for the primary's address
    first; a READONLY reply (that node is a replica now) drops the connection, so the
    next call connects to whichever node is the primary then.
    """

    def __init__(self, url: str, timeout: float, connect_timeout: float,
                 locate: Locate | None = None):
        self.options = connection_options(url)  # redis-py's URL rules; see redis_url.py
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.locate = locate
        self._link: _Link | None = None
        self._dialing: asyncio.Task[_Link] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    async def execute(self, *args: Arg) -> Any:
        """Send one command and return its reply; a Redis error reply raises
        ResponseError."""
        packed = _pack(args)
        link = self._link
        if link is None or link.closed:
            link = await self._connect()
        return self._checked(link, await link.send(packed))

    async def execute_unanswered(self, *args: Arg) -> None:
        """Send a command whose reply nobody needs, without waiting for it: on a live
        connection this returns without suspending, and the reply is read and dropped in
        turn. Later commands are answered after it (one connection, in order). Its
        failure reaches nobody: only for a command with a fallback of its own (an
        in-flight slot's release: the slot's expiry)."""
        link = self._link
        if link is None or link.closed:
            await self.execute(*args)  # connecting: the slow path, answered
            return
        link._write(_pack(args), None)

    async def execute_asking(self, *args: Arg) -> Any:
        """ASKING, then the command, back to back on the connection, so no other
        caller's command comes between them (Redis Cluster's ASK redirection)."""
        packed = _pack(args)
        link = self._link
        if link is None or link.closed:
            link = await self._connect()
        asking = link.send(hiredis.pack_command(("ASKING",)))
        answer = link.send(packed)
        self._checked(link, await asking)
        return self._checked(link, await answer)

    @staticmethod
    def _checked(link: _Link, reply: Any) -> Any:
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            if text.startswith("READONLY"):  # a primary demoted under us: reconnect
                link.abort(RedisConnectionError("Redis node is a replica now"))
            raise ResponseError(text)
        return reply

    async def ping(self) -> None:
        await self.execute("PING")

    async def _connect(self) -> _Link:
        """Every caller arriving while a connect is under way shares its outcome, so a
        Redis that does not answer costs them one connect timeout, not one each."""
        if self._closed:
            raise RedisConnectionError("Redis client closed")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:  # its link, timers and task live on the other loop
            raise RedisConnectionError("Redis client used from another event loop")
        dialing = self._dialing
        if dialing is None or dialing.done():
            dialing = self._dialing = loop.create_task(self._dial())
            dialing.add_done_callback(_retrieve)
        try:
            return await asyncio.shield(dialing)  # a cancelled caller leaves it to others
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if dialing.cancelled() and not (task and task.cancelling()):
                raise RedisConnectionError("Redis client closed") from None  # by aclose
            raise

    async def _dial(self) -> _Link:
        link = _Link(self.timeout)
        opts = self.options
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._open(link)
                # Sent before any caller's command, so answered before theirs.
                if opts.get("password"):
                    user = [opts["username"]] if opts.get("username") else []
                    await self._handshake(link, "AUTH", *user, opts["password"])
                if opts.get("db"):
                    await self._handshake(link, "SELECT", opts["db"])
                if opts.get("client_name"):
                    await self._handshake(link, "CLIENT", "SETNAME", opts["client_name"])
        except BaseException as exc:
            link.abort(RedisConnectionError("connect failed"))
            if isinstance(exc, TimeoutError):  # asyncio's (an OSError: test it first)
                raise RedisTimeoutError("Redis did not answer the connect in time") from None
            if isinstance(exc, RedisConnectionError | asyncio.CancelledError):
                raise
            # Refused, unreachable, TLS, a certificate file that cannot be read: always
            # a Redis error, so the breaker maps it and no request sees a 500.
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
        link.ready = True
        self._link = link
        return link

    async def _open(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        opts = self.options
        if "path" in opts:
            await loop.create_unix_connection(lambda: link, opts["path"])
            return
        host, port = opts.get("host", "localhost"), opts.get("port", 6379)
        if self.locate is not None:
            host, port = await self.locate()
        tls = None
        if is_tls(opts):
            tls = tls_context(opts)
        await loop.create_connection(lambda: link, host, port, ssl=tls,
                                     server_hostname=host if tls else None)

    @staticmethod
    async def _handshake(link: _Link, *args: str | int) -> None:
        reply = await link.send(hiredis.pack_command(args))  # type: ignore[arg-type]
        if isinstance(reply, hiredis.ReplyError):
            raise RedisConnectionError(f"Redis refused {args[0]}: {reply}")

    async def aclose(self) -> None:
        """Close the connection; calls in flight fail, later ones raise at once."""
        self._closed = True
        dialing, self._dialing = self._dialing, None
        if dialing is not None and not dialing.done():
            dialing.cancel()
            await asyncio.gather(dialing, return_exceptions=True)
        if self._link is not None:
            self._link.abort(RedisConnectionError("Redis client closed"), expected=True)
        self._link = None


def _pack(args: tuple[Arg, ...]) -> bytes:
    try:
        # hiredis' stub types the tuple as one element; it takes any number.
        packed: bytes = hiredis.pack_command(args)  # type: ignore[arg-type]
        return packed
    except (TypeError, UnicodeError) as exc:  # e.g. None, or a lone surrogate
        raise DataError(f"cannot send {type(exc).__name__}: {exc}") from None


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a connect's failure as seen even if every caller had gone (no warning)."""
    if not task.cancelled():
        task.exception()
