"""The job queue's records and seams: what the API side and the workers ask of a store.

    JobStore          submit (cap + Idempotency-Key, atomic), get, recent, cancel, depth
    JobQueue          take, reclaim, renew, finish, hand_back; due_webhooks, record_webhook
    IdempotencyStore  claim, complete, release: Idempotency-Key on synchronous requests

`MemoryJobStore` (jobs_memory.py: one process, not durable) and `RedisJobStore`
(jobs_redis.py: Redis Streams with a consumer group, durable, shared by replicas and
workers) implement all three and pass one contract suite (tests/stores/test_jobs.py).

Delivery is at least once; completion exactly once from a client's view. Every start of
a job (`take`, `reclaim`) raises its fencing `token`; `finish`, `renew` and `hand_back`
act only while the token they carry is the job's current one, so a worker that lost its
job (stalled past the visibility timeout, its job taken over by another worker) can
neither overwrite the newer attempt's result nor hand the job back.

The stores keep a job's request and outcome as opaque bytes (`gateway.jobs.records`
encodes them); they know states, tokens, tenants and times, nothing of HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
WEBHOOK_STATES = ("pending", "delivered", "dead")
SubmitResult = Literal["created", "existing", "full", "mismatch"]
ClaimResult = Literal["new", "busy", "done", "mismatch"]


def micros(t: float) -> int:
    """A creation time as the job index orders it (and the listing's cursor)."""
    return int(t * 1_000_000)


@dataclass(slots=True)
class Job:
    """One job as stored. Times are unix seconds (the wall clock replicas share)."""

    id: str
    tenant: str
    route: str
    status: str
    created: float
    request: bytes  # gateway.jobs.records.JobRequest, encoded
    body: bytes = b""  # the request body; dropped once the job has finished
    attempts: int = 0  # starts by workers (a hand-back on shutdown gives one back)
    token: int = 0  # the fencing token of the current attempt
    started: float | None = None  # first start
    finished: float | None = None
    outcome: bytes = b""  # gateway.jobs.records.Outcome, encoded
    callback: str = ""  # Callback-URL, when the client gave one
    webhook: str = ""  # "", or one of WEBHOOK_STATES
    webhook_attempts: int = 0
    webhook_error: str = ""
    entry: str = ""  # its current queue entry (a stream id on Redis)


@dataclass(frozen=True, slots=True)
class IdempotencyClaim:
    """An Idempotency-Key as stored: the tenant-scoped key and the request's fingerprint
    (method, path, query, body and whether it was asynchronous)."""

    key: str
    fingerprint: str
    ttl: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """A job a worker started: it owns the job while `token` is the job's current one."""

    job: Job
    token: int
    entry: str


class JobStore(Protocol):
    """The API side: submission, state, listing, cancellation."""

    async def submit(self, job: Job, cap: int, idem: IdempotencyClaim | None
                     ) -> tuple[SubmitResult, str]:
        """Enqueue `job` unless the tenant has `cap` jobs queued or running ('full'), or
        `idem` names an earlier job ('existing', its id) or another request
        ('mismatch')."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def recent(self, tenant: str, before: int | None, limit: int
                     ) -> list[Job]:
        """The tenant's jobs created before `before` (`micros`; None: now), newest
        first."""
        ...

    async def cancel(self, tenant: str, job_id: str, ttl: float) -> str:
        """'cancelled', '' (no such job of this tenant) or the status that forbids it."""
        ...

    async def depth(self) -> tuple[int, int]:
        """(queued, running) over every tenant, for the metrics."""
        ...


class JobQueue(Protocol):
    """The worker side. `consumer` names the worker (unique per process)."""

    async def take(self, consumer: str, count: int, block: float) -> list[Delivery]:
        """Start up to `count` queued jobs, waiting up to `block` seconds for one."""
        ...

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        """Take over jobs whose worker has not renewed them for `min_idle` seconds."""
        ...

    async def renew(self, consumer: str, deliveries: list[Delivery]) -> list[Delivery]:
        """Extend the leases of `deliveries`; returns those this worker no longer owns."""
        ...

    async def finish(self, delivery: Delivery, status: str, outcome: bytes, ttl: float
                     ) -> bool:
        """Write the outcome if `delivery` is still current (False: a stale attempt)."""
        ...

    async def hand_back(self, delivery: Delivery) -> bool:
        """Queue a started job again (graceful shutdown), if still current."""
        ...

    async def due_webhooks(self, now: float, lease: float, count: int) -> list[Job]:
        """Jobs whose webhook delivery is due, each leased for `lease` seconds."""
        ...

    async def record_webhook(self, job: Job, state: str, attempts: int, error: str,
                             next_at: float | None) -> None:
        """Note a delivery attempt; `next_at` schedules the next one (None: no more)."""
        ...


class IdempotencyStore(Protocol):
    """Idempotency-Key for synchronous requests (asynchronous ones go through `submit`)."""

    async def claim(self, claim: IdempotencyClaim, lease: float
                    ) -> tuple[ClaimResult, bytes]:
        """'new' (this request runs; the key is held for `lease` seconds), 'busy' (the
        first request is still running), 'done' (its stored answer), 'mismatch'."""
        ...

    async def complete(self, claim: IdempotencyClaim, answer: bytes) -> None: ...

    async def release(self, claim: IdempotencyClaim) -> None:
        """Free a claim whose request produced no answer worth storing."""
        ...


class JobBackend(JobStore, JobQueue, IdempotencyStore, Protocol):
    """What `open_stores` hands out: one object, all three seams."""
