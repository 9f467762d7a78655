"""The job queue in one process: the one-machine default, not durable.

Jobs, their results and Idempotency-Keys live in dicts of this process and are lost when
it stops; only in-process workers can reach them (`GATEWAY_JOBS_WORKERS`, on by default
without Redis). A worker can only die with the process, so there is nothing to reclaim;
`renew` keeps the same contract as on Redis. Every method runs without awaiting, except
`take`, which waits on a condition for work.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace

from gateway.stores.jobs import (
    ClaimResult,
    Delivery,
    IdempotencyClaim,
    Job,
    SubmitResult,
    micros,
)

SWEEP_EVERY = 1000  # submissions between sweeps of expired jobs


class MemoryJobStore:
    """JobStore, JobQueue and IdempotencyStore over this process's memory."""

    # A take interrupted while it waits has taken nothing (a worker stopping may cancel
    # it; on Redis a cancelled XREADGROUP may have been answered, so it is waited for).
    cancel_safe_take = True

    def __init__(self, list_keep: int = 10_000, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.list_keep = list_keep
        self._jobs: dict[str, Job] = {}
        self._expires: dict[str, float] = {}  # finished jobs: when they go
        self._queue: deque[str] = deque()
        self._pending: dict[str, set[str]] = {}  # tenant -> jobs queued or running
        self._index: dict[str, OrderedDict[str, None]] = {}  # tenant -> recent, oldest first
        # Idempotency-Keys: key -> (expires, kind, fingerprint, data), kinds as on Redis.
        self._idem: dict[str, tuple[float, str, str, bytes]] = {}
        self._webhooks: list[tuple[float, int, str]] = []  # heap of (due, seq, job id)
        self._seq = itertools.count()
        self._running = 0
        self._submitted = 0
        self._ready = asyncio.Condition()

    # -- JobStore ----------------------------------------------------------------------

    async def submit(self, job: Job, cap: int, idem: IdempotencyClaim | None
                     ) -> tuple[SubmitResult, str]:
        now = self.clock()
        if idem is not None:
            found = self._idem_get(idem.key, now)
            if found is not None:
                kind, fp, data = found
                if kind != "J" or fp != idem.fingerprint:
                    return "mismatch", ""
                if self._live(data.decode(), now) is not None:
                    return "existing", data.decode()
        pending = self._pending.setdefault(job.tenant, set())
        if len(pending) >= cap:
            return "full", ""
        self._submitted += 1
        if self._submitted % SWEEP_EVERY == 0:
            self.sweep()
        self._jobs[job.id] = replace(job)
        pending.add(job.id)
        index = self._index.setdefault(job.tenant, OrderedDict())
        index[job.id] = None
        while len(index) > self.list_keep:
            index.popitem(last=False)
        if idem is not None:
            self._idem[idem.key] = (now + idem.ttl, "J", idem.fingerprint, job.id.encode())
        self._queue.append(job.id)
        await self._notify()
        return "created", job.id

    async def get(self, job_id: str) -> Job | None:
        job = self._live(job_id, self.clock())
        return replace(job) if job is not None else None

    async def recent(self, tenant: str, before: int | None, limit: int) -> list[Job]:
        now = self.clock()
        out: list[Job] = []
        for job_id in reversed(self._index.get(tenant, {})):
            job = self._live(job_id, now)
            if job is None or (before is not None and micros(job.created) >= before):
                continue
            out.append(replace(job))
            if len(out) >= limit:
                break
        return out

    async def cancel(self, tenant: str, job_id: str, ttl: float) -> str:
        job = self._live(job_id, self.clock())
        if job is None or job.tenant != tenant:
            return ""
        if job.status != "queued":
            return job.status
        self._end(job, "cancelled", b"", ttl)
        with contextlib.suppress(ValueError):
            self._queue.remove(job_id)
        return "cancelled"

    async def depth(self) -> tuple[int, int]:
        return len(self._queue), self._running

    # -- JobQueue ----------------------------------------------------------------------

    async def take(self, consumer: str, count: int, block: float) -> list[Delivery]:
        if not self._queue and block > 0:
            async with self._ready:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), block)
        out: list[Delivery] = []
        now = self.clock()
        while self._queue and len(out) < count:
            job = self._jobs.get(self._queue.popleft())
            if job is None or job.status != "queued":
                continue
            job.attempts += 1
            job.token += 1
            job.status = "running"
            job.started = job.started if job.started is not None else now
            job.entry = f"{job.id}:{job.token}"
            self._running += 1
            out.append(Delivery(replace(job), job.token, job.entry))
        return out

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        return []  # a worker here dies only with the process, and the queue with it

    async def renew(self, consumer: str, deliveries: list[Delivery]) -> list[Delivery]:
        lost = []
        for d in deliveries:
            job = self._jobs.get(d.job.id)
            if job is None or job.token != d.token:
                lost.append(d)
        return lost

    async def finish(self, delivery: Delivery, status: str, outcome: bytes, ttl: float
                     ) -> bool:
        job = self._current(delivery)
        if job is None:
            return False
        self._running -= 1
        self._end(job, status, outcome, ttl)
        if job.callback:
            job.webhook = "pending"
            heapq.heappush(self._webhooks, (self.clock(), next(self._seq), job.id))
        return True

    async def hand_back(self, delivery: Delivery) -> bool:
        job = self._current(delivery)
        if job is None:
            return False
        self._running -= 1
        job.status = "queued"
        job.attempts -= 1
        self._queue.append(job.id)
        await self._notify()
        return True

    async def due_webhooks(self, now: float, lease: float, count: int) -> list[Job]:
        out: list[Job] = []
        while self._webhooks and self._webhooks[0][0] <= now and len(out) < count:
            _, _, job_id = heapq.heappop(self._webhooks)
            job = self._live(job_id, self.clock())
            if job is None or job.webhook != "pending":
                continue
            heapq.heappush(self._webhooks, (now + lease, next(self._seq), job_id))
            out.append(replace(job))
        return out

    async def record_webhook(self, job: Job, state: str, attempts: int, error: str,
                             next_at: float | None) -> None:
        stored = self._jobs.get(job.id)
        if stored is None:
            return
        stored.webhook, stored.webhook_attempts, stored.webhook_error = state, attempts, error
        # The lease entry left in the heap is skipped once the state is final, and a
        # rescheduled one is found by its new due time.
        if next_at is not None:
            heapq.heappush(self._webhooks, (next_at, next(self._seq), job.id))

    # -- IdempotencyStore --------------------------------------------------------------

    async def claim(self, claim: IdempotencyClaim, lease: float) -> tuple[ClaimResult, bytes]:
        now = self.clock()
        found = self._idem_get(claim.key, now)
        if found is None:
            self._idem[claim.key] = (now + lease, "P", claim.fingerprint, b"")
            return "new", b""
        kind, fp, data = found
        if fp != claim.fingerprint or kind == "J":
            return "mismatch", b""
        return ("busy", b"") if kind == "P" else ("done", data)

    async def complete(self, claim: IdempotencyClaim, answer: bytes) -> None:
        self._idem[claim.key] = (self.clock() + claim.ttl, "A", claim.fingerprint, answer)

    async def release(self, claim: IdempotencyClaim) -> None:
        found = self._idem.get(claim.key)
        if found is not None and found[1] == "P" and found[2] == claim.fingerprint:
            del self._idem[claim.key]

    # -- upkeep ------------------------------------------------------------------------

    def sweep(self) -> None:
        """Drop expired jobs and keys (every SWEEP_EVERY submissions)."""
        now = self.clock()
        for job_id in [j for j, t in self._expires.items() if t <= now]:
            self._forget(job_id)
        for key in [k for k, v in self._idem.items() if v[0] <= now]:
            del self._idem[key]

    def _current(self, delivery: Delivery) -> Job | None:
        job = self._jobs.get(delivery.job.id)
        if job is None or job.token != delivery.token or job.status != "running":
            return None
        return job

    def _end(self, job: Job, status: str, outcome: bytes, ttl: float) -> None:
        job.status, job.outcome, job.finished, job.body = status, outcome, self.clock(), b""
        self._expires[job.id] = job.finished + ttl
        self._pending.get(job.tenant, set()).discard(job.id)

    def _live(self, job_id: str, now: float) -> Job | None:
        expires = self._expires.get(job_id)
        if expires is not None and expires <= now:
            self._forget(job_id)
            return None
        return self._jobs.get(job_id)

    def _forget(self, job_id: str) -> None:
        self._expires.pop(job_id, None)
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._index.get(job.tenant, OrderedDict()).pop(job_id, None)

    def _idem_get(self, key: str, now: float) -> tuple[str, str, bytes] | None:
        found = self._idem.get(key)
        if found is None:
            return None
        if found[0] <= now:
            del self._idem[key]
            return None
        return found[1], found[2], found[3]

    async def _notify(self) -> None:
        async with self._ready:
            self._ready.notify_all()
