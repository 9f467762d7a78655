"""The rate-limit store seam: charge a request's limits and its in-flight slot at once.

    charge(checks, cost, cap) -> Charge   every limit and the slot, or nothing at all
    release(key, slot)                    the request ended (however it ended)
    settle(checks, delta)                 correct a charge by delta units (gcra only)
    refresh(slots)                        keep this process's live slots from expiring
    count(key)                            live slots under a key (readiness, tests)

`MemoryRateLimitStore` (memory.py) and `RedisRateLimitStore` (redis.py) implement it
with the same strategy (strategies.py) and one suite (tests/stores/). The Redis one
raises only `StoreUnavailable` (a `GuardedStore`, breaker.py); the memory one never fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

from limits import RateLimitItem

MICROS = 1_000_000


class Check(NamedTuple):
    """One limit to charge: its size and the state it is counted under (`limit_key`)."""

    amount: int
    window: int  # µs
    key: str


def tenant_scope(tenant: str) -> str:
    """The scope of a tenant-wide limit. `{tenant}` is the Redis Cluster hash tag: every
    key of one tenant's charge (its limits, its route limits, its in-flight slots) hashes
    to one slot, so charge.lua runs on one node (gateway/stores/redis_cluster.py)."""
    return f"t/{{{tenant}}}"


def route_scope(tenant: str, route: str) -> str:
    """The scope of a limit of one route for one tenant (same hash tag)."""
    return f"r/{{{tenant}}}/{route}"


def token_scope(tenant: str) -> str:
    """The scope of a tenant's LLM token limits (same hash tag)."""
    return f"k/{{{tenant}}}"


def limit_check(item: RateLimitItem, scope: str) -> Check:
    """The check of `item` under `scope` (`tenant_scope` or `route_scope`: a scope of
    one charge must hold the same hash tag, or a Redis Cluster refuses it)."""
    seconds = item.get_expiry()
    return Check(item.amount, seconds * MICROS, f"{scope}/{item.amount}/{seconds}")


class LimitState(NamedTuple):
    """What a charge found for one limit (units and µs; see strategies.Decision)."""

    left: int  # after this charge (meaningful when admitted)
    left_now: int  # before it
    reset: int
    reset_now: int
    retry: int


class Charge(NamedTuple):
    """What one `RateLimitStore.charge` found, and whether it charged (a named tuple:
    one is made per limited request)."""

    now: int  # µs, the store's clock (Redis TIME on Redis)
    verdict: int  # 0 admitted; i > 0: checks[i - 1] refused (the first); -1: cap full
    limits: tuple[LimitState, ...]  # per check, in order
    slot: str | None  # the slot taken; None unless admitted with a cap

    @property
    def admitted(self) -> bool:
        return self.verdict == 0


class RateLimitStore(Protocol):
    """Per-tenant limits and in-flight caps (see the module docstring).

    A slot not released (a crashed replica's) expires `ttl` seconds after its last
    refresh on Redis; in memory it lives as long as the process.
    """

    async def charge(self, checks: Sequence[Check], cost: int,
                     cap: tuple[str, int] | None = None) -> Charge: ...

    async def release(self, key: str, slot: str) -> None: ...

    async def settle(self, checks: Sequence[Check], delta: int) -> None:
        """Correct an earlier charge of `checks` by `delta` units (more or fewer), never
        refusing: the tokens an LLM call really used against what was reserved for it.
        Only a `gcra` store can (the token and budget stores are; docs/llm.md)."""
        ...

    async def refresh(self, slots: Sequence[tuple[str, str]]) -> None: ...

    async def count(self, key: str) -> int: ...
