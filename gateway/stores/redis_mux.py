"""One pipelined Redis connection for the stores' own commands (the request hot path).

A limited request makes one Redis call before the upstream (charge_limits.lua) and, with
an in-flight cap, one after it (ZREM); a cached route one GET. Through redis-py 8 each
call pays its per-command layers (pool checkout, retry wrapper, event dispatch,
observability recorder) before a byte moves; here a call is one packed write and one
future (`bench/bench_redis_charge.py` measures both clients).

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
    reconnects.
Only commands that answer at once belong here (no blocking commands, no MULTI, no
pub/sub); redis-py stays the client for the rest.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from collections import deque
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Waiter = tuple[float, "asyncio.Future[Any]"]  # (deadline, future)


class _Link(asyncio.Protocol):
    """One connection: writes commands, resolves waiters with replies in order."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.reader = hiredis.Reader()
        self.waiters: deque[Waiter] = deque()
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.closed = False
        self._watch: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        if self.closed:  # lost between the caller's check and now: nothing would answer
            raise RedisConnectionError("connection to Redis lost")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self.waiters.append((time.monotonic() + self.timeout, fut))
        self.transport.write(packed)
        if self._watch is None:
            self._watch = loop.call_later(self.timeout, self._check_deadline)
        return fut

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
            if not fut.done():  # done: its caller was cancelled; the reply is dropped
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

    def abort(self, exc: Exception) -> None:
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.transport is not None:
            self.transport.abort()
        while self.waiters:
            fut = self.waiters.popleft()[1]
            if not fut.done():
                fut.set_exception(exc)


class MuxRedis:
    """Commands over one shared, pipelined connection to the Redis at `url`."""

    def __init__(self, url: str, timeout: float, connect_timeout: float):
        self.options: dict[str, Any] = dict(parse_url(url))  # redis-py's own URL rules
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._link: _Link | None = None
        self._dialing: asyncio.Task[_Link] | None = None

    async def execute(self, *args: str | bytes | int | float) -> Any:
        """Send one command and return its reply; a Redis error reply raises
        ResponseError."""
        link = self._link
        if link is None or link.closed:
            link = await self._connect()
        # hiredis' stub types the tuple as one element; it takes any number (C packer).
        reply = await link.send(hiredis.pack_command(args))  # type: ignore[arg-type]
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    async def ping(self) -> None:
        await self.execute("PING")

    async def _connect(self) -> _Link:
        """Every caller arriving while a connect is under way shares its outcome, so a
        Redis that does not answer costs them one connect timeout, not one each."""
        dialing = self._dialing
        if dialing is None or dialing.done():
            dialing = self._dialing = asyncio.get_running_loop().create_task(self._dial())
            dialing.add_done_callback(_retrieve)
        return await asyncio.shield(dialing)  # a cancelled caller leaves it to the others

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
        except BaseException as exc:
            link.abort(RedisConnectionError("connect failed"))
            if isinstance(exc, TimeoutError):  # asyncio's (an OSError: test it first)
                raise RedisTimeoutError("Redis did not answer the connect in time") from None
            if isinstance(exc, OSError):  # refused, unreachable, TLS
                raise RedisConnectionError(f"cannot connect to Redis: {exc}") from None
            raise
        self._link = link
        return link

    async def _open(self, link: _Link) -> None:
        loop = asyncio.get_running_loop()
        opts = self.options
        if "path" in opts:
            await loop.create_unix_connection(lambda: link, opts["path"])
        else:
            tls = _tls_context(opts) if opts.get("connection_class") is SSLConnection else None
            await loop.create_connection(lambda: link, opts.get("host", "localhost"),
                                         opts.get("port", 6379), ssl=tls)

    @staticmethod
    async def _handshake(link: _Link, *args: str | int) -> None:
        reply = await link.send(hiredis.pack_command(args))  # type: ignore[arg-type]
        if isinstance(reply, hiredis.ReplyError):
            raise RedisConnectionError(f"Redis refused {args[0]}: {reply}")

    async def aclose(self) -> None:
        if self._dialing is not None and not self._dialing.done():
            self._dialing.cancel()
        if self._link is not None and self._link.transport is not None:
            self._link.transport.close()
        self._link = None


def _retrieve(task: asyncio.Task[Any]) -> None:
    """Mark a connect's failure as seen even if every caller had gone (no warning)."""
    if not task.cancelled():
        task.exception()


def _tls_context(opts: dict[str, Any]) -> ssl.SSLContext:
    """TLS for rediss:// URLs, from the query options redis-py also reads
    (ssl_ca_certs, ssl_cert_reqs, ssl_check_hostname)."""
    context = ssl.create_default_context(cafile=opts.get("ssl_ca_certs"))
    if opts.get("ssl_check_hostname") is False:
        context.check_hostname = False
    if opts.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class MuxScript:
    """A Lua script run by EVALSHA, loaded on the first NOSCRIPT (as redis-py does)."""

    def __init__(self, client: MuxRedis, text: str):
        self.client = client
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except ResponseError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        await self.client.execute("SCRIPT", "LOAD", self.text)
        return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
