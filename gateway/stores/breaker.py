"""A circuit breaker around the shared state store, and the record of its health.

    closed ──(N consecutive failures)──> open ──(cool-down, background PING ok)──> closed
                                          └───(PING fails)──> open for another cool-down

While open, every store call fails at once with `StoreUnavailable`, so a dead Redis costs
requests nothing but a function call; the policies then fail open or closed as the
operator chose. No request ever waits on the probe: it runs as a background task, which
the breaker starts itself once per cool-down while open, traffic or not. So a replica
that an orchestrator withholds traffic from (because /readyz said not ready) recovers,
and the first request after the store is back is limited again. A readiness check that
finds the cool-down over probes at once and answers with the probe's verdict.

The breaker is also where store errors become gateway errors (redis-py's, socket
errors), and it can bound concurrent calls (a client whose pool fails instead of
queueing would need that). `degraded` and `degraded_seconds_total` are read by /readyz
and exported as metrics.

`GuardedStore` (below) is the base of the Redis stores: `__init_subclass__` sends every
public coroutine a subclass defines through its breaker, as `limits`' storage base class
wraps its methods' errors, so no caller can forget the breaker and no Redis error ever
reaches a policy as a 500.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from gateway.errors import StoreUnavailable

log = structlog.get_logger("gateway.stores")

T = TypeVar("T")
STORE_ERRORS = (RedisError, OSError, TimeoutError)


class StoreBreaker:
    """Guards every call to one store; use one per Redis, shared by all its stores."""

    def __init__(self, name: str, failures: int, cooldown: float, max_in_flight: int | None,
                 probe: Callable[[], Awaitable[object]] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.threshold = failures
        self.cooldown = cooldown
        self.probe = probe
        self.clock = clock
        # None: nothing to bound (in-process stores never wait); a semaphore costs each
        # call several of its own frames.
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight is not None else None
        self._failures = 0
        self._opened_at: float | None = None  # start of the current outage
        self._retry_at = 0.0
        self._probing: asyncio.Task[None] | None = None
        self._recovery: asyncio.Task[None] | None = None  # probes while open, see above
        self._degraded_before = 0.0  # seconds of outages that have ended
        self.last_error = ""

    @property
    def degraded(self) -> bool:
        """True while the breaker is open: the store is skipped."""
        return self._opened_at is not None

    @property
    def degraded_seconds_total(self) -> float:
        """Seconds spent degraded since start, including the outage under way (a counter)."""
        current = self.clock() - self._opened_at if self._opened_at is not None else 0.0
        return self._degraded_before + current

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one store operation, or raise StoreUnavailable without waiting if open."""
        if self._opened_at is not None:
            self._maybe_probe()
            raise StoreUnavailable(f"{self.name} is unavailable: {self.last_error}",
                                   retry_after=max(1, round(self.cooldown)))
        try:
            if self._gate is None:
                result = await fn()
            else:
                async with self._gate:
                    result = await fn()
        except STORE_ERRORS as exc:
            self._record_failure(exc)
            raise StoreUnavailable(f"{self.name} is unavailable",
                                   retry_after=max(1, round(self.cooldown))) from None
        self._failures = 0
        return result

    async def check(self) -> tuple[bool, str]:
        """A readiness check: not ready while open; otherwise one PING through the breaker."""
        if self._opened_at is not None:
            self._maybe_probe()
            probing = self._probing
            if probing is not None and not probing.done():
                await asyncio.wait([probing])  # bounded by the store's own timeouts
            if self._opened_at is not None:
                return False, f"breaker open: {self.last_error}"
            return True, "ok"
        if self.probe is not None:
            try:
                await self.call(self.probe)
            except StoreUnavailable:
                return False, f"unreachable: {self.last_error}"
        return True, "ok"

    def _record_failure(self, exc: BaseException) -> None:
        self.last_error = type(exc).__name__
        self._failures += 1
        if self._failures >= self.threshold and self._opened_at is None:
            self._opened_at = self.clock()
            self._retry_at = self._opened_at + self.cooldown
            log.warning("store_breaker_open", store=self.name, error=self.last_error,
                        cooldown=self.cooldown)
            if self.probe is not None and (self._recovery is None or self._recovery.done()):
                self._recovery = asyncio.get_running_loop().create_task(self._recover())

    def _close(self) -> None:
        if self._opened_at is not None:
            outage = self.clock() - self._opened_at
            self._degraded_before += outage
            log.info("store_breaker_closed", store=self.name, outage_seconds=round(outage, 3))
        self._opened_at = None
        self._failures = 0

    def _maybe_probe(self) -> None:
        if self.clock() < self._retry_at or (self._probing and not self._probing.done()):
            return
        if self.probe is None:
            self._close()  # nothing to probe with: let the next real call try
            return
        self._retry_at = self.clock() + self.cooldown
        self._probing = asyncio.get_running_loop().create_task(self._probe_once())

    async def _recover(self) -> None:
        """While open: wait out each cool-down, then probe (or join a probe under way)."""
        while self._opened_at is not None:
            await asyncio.sleep(max(0.0, self._retry_at - self.clock()))
            self._maybe_probe()
            probing = self._probing
            if probing is not None and not probing.done():
                await asyncio.wait([probing])

    async def _probe_once(self) -> None:
        assert self.probe is not None
        try:
            if self._gate is None:
                await self.probe()
            else:
                async with self._gate:
                    await self.probe()
        except STORE_ERRORS as exc:
            self.last_error = type(exc).__name__
            self._retry_at = self.clock() + self.cooldown
            return
        self._close()

    async def aclose(self) -> None:
        tasks = [t for t in (self._recovery, self._probing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _through_breaker(method: Callable[..., Coroutine[Any, Any, T]]
                     ) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def guarded(self: GuardedStore, *args: Any, **kwargs: Any) -> T:
        return await self.breaker.call(functools.partial(method, self, *args, **kwargs))

    return guarded


class GuardedStore:
    """Base of the Redis stores: their public async methods raise only `StoreUnavailable`."""

    breaker: StoreBreaker

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, member in list(vars(cls).items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(member):
                setattr(cls, name, _through_breaker(member))
