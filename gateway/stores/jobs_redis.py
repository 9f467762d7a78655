"""The job queue on Redis Streams: durable, shared by every replica and worker.

    gw:{jobs}:stream             the queue: one entry per start-able job (XADD MAXLEN ~)
      group gw-workers           XREADGROUP hands entries out; an entry stays pending (PEL)
                                 until its job finishes (XACK + XDEL in job_finish.lua)
    gw:{jobs}:job:<id>           the job's hash: state, token, attempts, request, outcome
    gw:{jobs}:pending:<tenant>   zset of jobs queued or running: the per-tenant cap
    gw:{jobs}:index:<tenant>     zset of recent jobs by creation time: GET /v1/jobs
    gw:{jobs}:webhooks           zset of due webhook deliveries (score: when), leased
    gw:{jobs}:idem:<tenant>:<h>  an Idempotency-Key's record (idem_claim.lua)

A worker that dies leaves its entries pending; once an entry has been idle for the
visibility timeout (a live worker renews its own every third of it, job_renew.lua),
another worker's XAUTOCLAIM takes it, and job_start.lua raises the job's fencing token,
so the dead worker's late result, should it come, is refused by job_finish.lua. Every
step that reads and writes state is one Lua file in lua/ (atomic); the rest are single
commands. XREADGROUP BLOCK is a blocking command, so it goes over redis-py (a
connection of its own while it waits), never over the stores' pipelined MuxRedis.
"""

from __future__ import annotations

import time
from typing import Any

from redis.exceptions import ResponseError

from gateway.stores.breaker import GuardedStore, StoreBreaker
from gateway.stores.jobs import (
    ClaimResult,
    Delivery,
    IdempotencyClaim,
    Job,
    SubmitResult,
    micros,
)
from gateway.stores.redis import lua_script
from gateway.stores.redis_bridge import StoreRedis, StoreScript
from gateway.stores.redis_ha import RedisClient

# One hash tag for every key: each script touches the stream, a job and a tenant's sets
# at once, so on a Redis Cluster they must share a slot (the queue lives on one node).
TAG = "gw:{jobs}:"
JOB_PREFIX = TAG + "job:"
STREAM = TAG + "stream"
GROUP = "gw-workers"
PENDING_PREFIX = TAG + "pending:"
INDEX_PREFIX = TAG + "index:"
WEBHOOKS = TAG + "webhooks"
IDEM_PREFIX = TAG + "idem:"
BLOCK_MAX = 2.0  # seconds one XREADGROUP may wait (below the blocking client's timeout)
UNFINISHED_TTL = 7 * 86_400  # seconds a job may wait or run before its hash expires
_INT_FIELDS = ("attempts", "token", "webhook_attempts")
_FLOAT_FIELDS = ("created", "started", "finished")


_us = micros


def _job_from(fields: dict[bytes, bytes]) -> Job:
    f = {k.decode(): v for k, v in fields.items()}

    def text(name: str) -> str:
        return f[name].decode() if name in f else ""

    def number(name: str) -> float | None:
        return float(f[name]) if name in f else None

    return Job(
        id=text("id"), tenant=text("tenant"), route=text("route"), status=text("status"),
        created=float(f["created"]), request=f.get("request", b""), body=f.get("body", b""),
        attempts=int(f.get("attempts", 0)), token=int(f.get("token", 0)),
        started=number("started"), finished=number("finished"),
        outcome=f.get("outcome", b""), callback=text("callback"), webhook=text("webhook"),
        webhook_attempts=int(f.get("webhook_attempts", 0)),
        webhook_error=text("webhook_error"), entry=text("entry"))


def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}


class RedisJobStore(GuardedStore):
    """JobStore, JobQueue and IdempotencyStore on Redis (see the module docstring).

    Every public method goes through the stores' breaker (`GuardedStore`), so Redis
    errors reach callers as StoreUnavailable only.
    """

    def __init__(self, client: StoreRedis, breaker: StoreBreaker, blocking: RedisClient,
                 *, maxlen: int, list_keep: int):
        self.client = client
        self.breaker = breaker
        # XREADGROUP BLOCK's client: redis-py, with a socket timeout above BLOCK_MAX.
        self.blocking = blocking
        self.maxlen = maxlen
        self.list_keep = list_keep
        self._group_ready = False
        self._submit = StoreScript(client, lua_script("job_submit"))
        self._start = StoreScript(client, lua_script("job_start"))
        self._finish = StoreScript(client, lua_script("job_finish"))
        self._cancel = StoreScript(client, lua_script("job_cancel"))
        self._renew = StoreScript(client, lua_script("job_renew"))
        self._hand_back = StoreScript(client, lua_script("job_hand_back"))
        self._webhook_claim = StoreScript(client, lua_script("webhook_claim"))
        self._idem_claim = StoreScript(client, lua_script("idem_claim"))
        self._idem_release = StoreScript(client, lua_script("idem_release"))

    # -- JobStore ----------------------------------------------------------------------

    async def submit(self, job: Job, cap: int, idem: IdempotencyClaim | None
                     ) -> tuple[SubmitResult, str]:
        fields: list[Any] = ["id", job.id, "tenant", job.tenant, "route", job.route,
                             "status", "queued", "created", repr(job.created),
                             "request", job.request, "body", job.body,
                             "attempts", 0, "token", 0]
        if job.callback:
            fields += ["callback", job.callback]
        keys = [JOB_PREFIX + job.id, STREAM, PENDING_PREFIX + job.tenant,
                INDEX_PREFIX + job.tenant, IDEM_PREFIX + idem.key if idem is not None else ""]
        args: list[Any] = [
            job.id, _us(job.created), cap, self.maxlen, self.list_keep,
            UNFINISHED_TTL * 1000, "J" + idem.fingerprint if idem is not None else "",
            int(idem.ttl * 1000) if idem is not None else 0, JOB_PREFIX, *fields]
        outcome, job_id = await self._submit(keys, args)
        return outcome.decode(), job_id.decode()

    async def get(self, job_id: str) -> Job | None:
        fields = await self.client.execute("HGETALL", JOB_PREFIX + job_id)
        return _job_from(_pairs(fields)) if fields else None

    async def recent(self, tenant: str, before: int | None, limit: int) -> list[Job]:
        top = f"({before}" if before is not None else "+inf"
        out: list[Job] = []
        while len(out) < limit:
            ids = await self.client.execute("ZREVRANGEBYSCORE", INDEX_PREFIX + tenant, top,
                                            "-inf", "WITHSCORES", "LIMIT", 0, limit)
            if not ids:
                break
            gone = []
            for i in range(0, len(ids), 2):
                job = await self.get(ids[i].decode())
                if job is None:
                    gone.append(ids[i])
                elif len(out) < limit:
                    out.append(job)
            if gone:  # expired: their index entries go too
                await self.client.execute("ZREM", INDEX_PREFIX + tenant, *gone)
            if len(ids) < 2 * limit:
                break
            top = f"({int(float(ids[-1]))}"
        return out

    async def cancel(self, tenant: str, job_id: str, ttl: float) -> str:
        found = await self._cancel([JOB_PREFIX + job_id, PENDING_PREFIX + tenant],
                                   [tenant, repr(time.time()), int(ttl * 1000)])
        return found.decode() if isinstance(found, bytes) else str(found or "")

    async def depth(self) -> tuple[int, int]:
        try:
            groups = await self.client.execute("XINFO", "GROUPS", STREAM)
        except ResponseError:  # no stream yet: nothing was ever submitted
            return 0, 0
        for group in groups:
            info = _pairs(group)
            if info.get(b"name") == GROUP.encode():
                lag = info.get(b"lag")
                pending = int(info.get(b"pending", 0))
                queued = int(lag) if lag is not None else 0
                return queued, pending
        length = int(await self.client.execute("XLEN", STREAM))
        return length, 0  # no worker has ever connected: everything is queued

    # -- JobQueue ----------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            # From the stream's start: entries added before any worker existed count too.
            await self.client.execute("XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM")
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._group_ready = True

    async def take(self, consumer: str, count: int, block: float) -> list[Delivery]:
        await self._ensure_group()
        try:
            reply = await self.blocking.execute_command(
                "XREADGROUP", "GROUP", GROUP, consumer, "COUNT", count,
                "BLOCK", max(1, int(min(block, BLOCK_MAX) * 1000)), "STREAMS", STREAM, ">")
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost the stream (restarted empty)
                self._group_ready = False
            raise
        # RESP3: {stream: [[id, fields], ...]}; RESP2: [[stream, [[id, fields], ...]], ...]
        streams = (list(reply.values()) if isinstance(reply, dict)
                   else [s[1] for s in reply or ()])
        entries = [(e[0], e[1] if isinstance(e[1], dict) else _pairs(e[1]))
                   for stream in streams for e in stream if e and e[1]]
        return await self._start_all(consumer, entries)

    async def reclaim(self, consumer: str, min_idle: float, count: int) -> list[Delivery]:
        await self._ensure_group()
        reply = await self.client.execute("XAUTOCLAIM", STREAM, GROUP, consumer,
                                          int(min_idle * 1000), "0-0", "COUNT", count)
        entries = [(e[0], _pairs(e[1])) for e in reply[1] if e and e[1]]
        return await self._start_all(consumer, entries)

    async def _start_all(self, consumer: str, entries: list[tuple[bytes, dict[bytes, bytes]]]
                         ) -> list[Delivery]:
        out = []
        now = repr(time.time())
        for entry_id, fields in entries:
            job_id = fields.get(b"job", b"").decode()
            entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            flat = await self._start([JOB_PREFIX + job_id, STREAM],
                                     [GROUP, entry, now, consumer])
            if flat:
                job = _job_from(_pairs(flat))
                out.append(Delivery(job, job.token, entry))
        return out

    async def renew(self, consumer: str, deliveries: list[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        args: list[Any] = [GROUP, consumer]
        for d in deliveries:
            args += [d.entry, d.token]
        lost = await self._renew([STREAM, *(JOB_PREFIX + d.job.id for d in deliveries)], args)
        return [deliveries[int(i) - 1] for i in lost]

    async def finish(self, delivery: Delivery, status: str, outcome: bytes, ttl: float
                     ) -> bool:
        now = time.time()
        job = delivery.job
        done = await self._finish(
            [JOB_PREFIX + job.id, STREAM, PENDING_PREFIX + job.tenant, WEBHOOKS],
            [GROUP, delivery.entry, delivery.token, status, outcome, repr(now),
             int(ttl * 1000), _us(now)])
        return bool(done)

    async def hand_back(self, delivery: Delivery) -> bool:
        done = await self._hand_back([JOB_PREFIX + delivery.job.id, STREAM],
                                     [GROUP, delivery.entry, delivery.token, self.maxlen])
        return bool(done)

    async def due_webhooks(self, now: float, lease: float, count: int) -> list[Job]:
        ids = await self._webhook_claim([WEBHOOKS], [_us(now), _us(now + lease), count])
        out = []
        for raw in ids:
            job = await self.get(raw.decode())
            if job is None or job.webhook != "pending":  # expired, or already final
                await self.client.execute("ZREM", WEBHOOKS, raw)
                continue
            out.append(job)
        return out

    async def record_webhook(self, job: Job, state: str, attempts: int, error: str,
                             next_at: float | None) -> None:
        key = JOB_PREFIX + job.id
        # HSET on a hash that expired meanwhile would make a new, immortal one.
        if not await self.client.execute("EXISTS", key):
            await self.client.execute("ZREM", WEBHOOKS, job.id)
            return
        await self.client.execute("HSET", key, "webhook", state, "webhook_attempts",
                                  attempts, "webhook_error", error)
        if next_at is None:
            await self.client.execute("ZREM", WEBHOOKS, job.id)
        else:
            await self.client.execute("ZADD", WEBHOOKS, _us(next_at), job.id)

    # -- IdempotencyStore --------------------------------------------------------------

    async def claim(self, claim: IdempotencyClaim, lease: float) -> tuple[ClaimResult, bytes]:
        result, data = await self._idem_claim([IDEM_PREFIX + claim.key],
                                              [claim.fingerprint, int(lease * 1000)])
        return result.decode(), data

    async def complete(self, claim: IdempotencyClaim, answer: bytes) -> None:
        await self.client.execute("SET", IDEM_PREFIX + claim.key,
                                  b"A" + claim.fingerprint.encode() + b"\n" + answer,
                                  "PX", int(claim.ttl * 1000))

    async def release(self, claim: IdempotencyClaim) -> None:
        await self._idem_release([IDEM_PREFIX + claim.key], [claim.fingerprint])
