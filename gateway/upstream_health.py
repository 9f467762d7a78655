"""Which upstream targets may take traffic: passive circuit breaking and active checks.

Passive: `failures` consecutive failed attempts open a target's circuit for `cooldown`
seconds; after that exactly one request goes through as a probe: success closes the
circuit, failure opens it again. Active: a periodic GET on each target's health path;
`unhealthy_threshold` failed checks in a row take it out, `healthy_threshold` passes put
it back. State is kept by target URL, outside the config, so it survives reloads.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import structlog

from gateway.config.models import CircuitBreaker
from gateway.config.runtime import CompiledGroup, CompiledTarget, ConfigHolder

log = structlog.get_logger("gateway.upstream")


class TargetState:
    """Health of one target URL."""

    __slots__ = ("check_fails", "check_oks", "failures", "healthy", "last_check", "open_until",
                 "parked_until", "probing")

    def __init__(self) -> None:
        self.failures = 0
        self.open_until = 0.0  # 0: closed
        self.probing = False
        self.healthy = True  # active checks' verdict
        self.check_fails = 0
        self.check_oks = 0
        self.last_check = 0.0
        self.parked_until = 0.0  # a 429's Retry-After: no traffic until then


class TargetHealth:
    """Circuit and health-check state of every target, with the decisions over it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.states: dict[str, TargetState] = {}

    def state(self, url: str) -> TargetState:
        st = self.states.get(url)
        if st is None:
            st = self.states[url] = TargetState()
        return st

    def usable(self, url: str) -> bool:
        """Closed and healthy, or open with the cool-down over and no probe in flight."""
        st = self.states.get(url)
        if st is None:
            return True
        if not st.healthy:
            return False
        if st.parked_until and self.clock() < st.parked_until:
            return False
        if not st.open_until:
            return True
        return not st.probing and self.clock() >= st.open_until

    def begin(self, url: str) -> None:
        """A request is about to go to `url`: if its circuit is half-open, it is the probe."""
        st = self.states.get(url)
        if st is not None and st.open_until:
            st.probing = True

    def park(self, url: str, seconds: float) -> None:
        """`url` answered 429: take it out of rotation for `seconds` (its Retry-After)."""
        st = self.state(url)
        st.parked_until = max(st.parked_until, self.clock() + seconds)
        log.info("target_parked", target=url, seconds=round(seconds, 3))

    def abandon(self, url: str) -> None:
        """The request to `url` was cancelled (its client left): if it was the probe, the
        next request probes instead, rather than the circuit staying half-open for good."""
        st = self.states.get(url)
        if st is not None:
            st.probing = False

    def record_success(self, url: str) -> None:
        st = self.states.get(url)
        if st is not None and (st.failures or st.open_until):
            if st.open_until:
                log.info("circuit_closed", target=url)
            st.failures, st.open_until, st.probing = 0, 0.0, False

    def record_failure(self, url: str, breaker: CircuitBreaker) -> None:
        st = self.state(url)
        st.failures += 1
        if st.probing or st.failures >= breaker.failures:
            if not st.open_until or st.probing:
                log.warning("circuit_opened", target=url, failures=st.failures)
            st.open_until = self.clock() + breaker.cooldown
            st.probing = False

    def circuit_state(self, url: str) -> str:
        """closed | open | half_open, for metrics."""
        st = self.states.get(url)
        if st is None or not st.open_until:
            return "closed"
        return "half_open" if self.clock() >= st.open_until else "open"

    def retry_after(self, group: CompiledGroup) -> int:
        """Whole seconds until some target of the group may take traffic again."""
        now = self.clock()
        waits = [
            max(st.open_until, st.parked_until) - now
            for t in group.targets
            if (st := self.states.get(t.url)) is not None
            and (st.open_until or st.parked_until > now) and st.healthy
        ]
        interval = group.health_check.interval if group.health_check else 1.0
        return max(1, int(min(waits, default=interval) + 0.999))

    # -- active checks ------------------------------------------------------------------

    async def check_target(self, client: httpx.AsyncClient, group: CompiledGroup,
                           target: CompiledTarget) -> None:
        hc = group.health_check
        assert hc is not None
        url = target.url
        st = self.state(url)
        st.last_check = self.clock()
        try:
            # With the target's configured headers: a provider's health path may need
            # the same credentials as its API.
            r = await client.get(url + hc.path, timeout=hc.timeout,
                                 headers={h.name: h.value for h in target.headers})
            ok = r.status_code < 500
        except httpx.HTTPError:
            ok = False
        if ok:
            st.check_oks, st.check_fails = st.check_oks + 1, 0
            if not st.healthy and st.check_oks >= hc.healthy_threshold:
                st.healthy = True
                log.info("target_healthy", target=url, group=group.name)
        else:
            st.check_fails, st.check_oks = st.check_fails + 1, 0
            if st.healthy and st.check_fails >= hc.unhealthy_threshold:
                st.healthy = False
                log.warning("target_unhealthy", target=url, group=group.name)

    async def run_checks(self, holder: ConfigHolder, client: httpx.AsyncClient,
                         tick: float = 0.25) -> None:
        """Check every due target of every group that has a health check, forever."""
        while True:
            now = self.clock()
            due = {  # by URL: a target shared by two groups is checked once
                t.url: (g, t)
                for g in holder.current.groups.values() if g.health_check
                for t in g.targets
                if now - self.state(t.url).last_check >= g.health_check.interval
            }
            if due:
                await asyncio.gather(*(self.check_target(client, g, t)
                                       for g, t in due.values()))
            await asyncio.sleep(tick)
