"""Webhook delivery: a finished job with a Callback-URL is POSTed there, signed.

The outcome's write schedules the delivery in the store (job_finish.lua), so it is as
durable as the job: a worker takes due deliveries under a lease (a worker that dies
mid-delivery leaves it due again), POSTs the job's JSON (the same view GET /v1/jobs/{id}
gives, under `job`), signed as `gateway.jobs.signing` describes, and notes the result:

    a 2xx answer              delivered
    anything else, no answer  retried after base * 2^(n-1) seconds (capped), times a
                              random factor in [0.5, 1.5) so that receivers coming back
                              are not hit by every retry at once
    the last attempt failed   dead (the dead letter): visible as the job's
                              `webhook.state`, in GET /v1/jobs?webhook=dead, and counted
                              in gateway_job_webhooks_total{result="dead"}

Before each attempt the URL is checked again against the tenant's allowed prefixes of
the current config (an operator who removed one stops its deliveries), and redirects
are never followed, so nothing is called that an operator did not allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import httpx
import orjson
import structlog

from gateway.auth.key_store import KeyStore
from gateway.auth.webhook_secrets import derive_secret
from gateway.config.runtime import ConfigHolder
from gateway.errors import StoreUnavailable, UnprocessableContent
from gateway.jobs.callbacks import check_callback
from gateway.jobs.records import job_view
from gateway.jobs.signing import ID_HEADER, SIGNATURE_HEADER, sign
from gateway.metrics import GatewayMetrics
from gateway.stores.jobs import Job, JobQueue

log = structlog.get_logger("gateway.jobs")

POLL = 0.2  # seconds between looks for due deliveries when none were due
CONCURRENCY = 16
NO_SECRET = "the tenant has no webhook secret: gateway webhooks rotate --tenant {tenant}"
NOT_ALLOWED = "the callback URL is no longer under an allowed prefix"


def retry_delay(attempt: int, base: float, cap: float, r: float) -> float:
    """Seconds before retry `attempt` (1 = the first retry); `r` in [0, 1)."""
    return min(cap, base * 2.0 ** (attempt - 1)) * (0.5 + r)


def payload(job: Job) -> bytes:
    view = job_view(job)
    view.pop("webhook", None)
    return orjson.dumps({"type": f"job.{job.status}", "job": view})


class WebhookSender:
    """Delivers due webhooks until cancelled (one per worker process)."""

    def __init__(self, queue: JobQueue, holder: ConfigHolder, keys: KeyStore, key: bytes,
                 client: httpx.AsyncClient, *, max_attempts: int, backoff: float,
                 max_backoff: float, timeout: float, metrics: GatewayMetrics | None = None,
                 rng: Callable[[], float] = random.random):
        self.queue, self.holder, self.keys, self.key = queue, holder, keys, key
        self.client = client
        self.max_attempts, self.backoff, self.max_backoff = max_attempts, backoff, max_backoff
        self.timeout = timeout
        self.metrics = metrics
        self.rng = rng
        self._busy: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            free = CONCURRENCY - len(self._busy)
            due: list[Job] = []
            if free > 0:
                with contextlib.suppress(StoreUnavailable):
                    due = await self.queue.due_webhooks(time.time(), self.timeout + 5, free)
            for job in due:
                task = asyncio.create_task(self.deliver(job))
                self._busy.add(task)
                task.add_done_callback(self._busy.discard)
            if not due:
                await asyncio.sleep(POLL)

    def _secrets(self, tenant: str) -> list[str]:
        now = time.time()
        return [derive_secret(self.key, r) for r in self.keys.webhook_secrets(tenant)
                if r.valid(now)]

    async def deliver(self, job: Job) -> None:
        attempts = job.webhook_attempts + 1
        error = ""
        tenant = self.holder.current.tenants.get(job.tenant)
        secrets = self._secrets(job.tenant)
        try:
            check_callback(job.callback, tenant.webhooks.allowed_urls if tenant else [])
        except UnprocessableContent:
            error = NOT_ALLOWED
        if not error and not secrets:
            error = NO_SECRET.format(tenant=job.tenant)
        if not error:
            body = payload(job)
            headers = {"Content-Type": "application/json", ID_HEADER: job.id,
                       SIGNATURE_HEADER: sign(secrets, int(time.time()), body),
                       "User-Agent": "ai-gateway-webhooks"}
            try:
                answer = await self.client.post(job.callback, content=body, headers=headers,
                                                timeout=self.timeout, follow_redirects=False)
                if not 200 <= answer.status_code < 300:
                    error = f"answered {answer.status_code}"
            except httpx.HTTPError as exc:
                error = type(exc).__name__
        if not error:
            state, next_at, result = "delivered", None, "delivered"
        elif attempts >= self.max_attempts or error == NOT_ALLOWED:
            state, next_at, result = "dead", None, "dead"
            log.warning("webhook_dead", job=job.id, tenant=job.tenant, attempts=attempts,
                        error=error)
        else:
            state, result = "pending", "retried"
            next_at = time.time() + retry_delay(attempts, self.backoff, self.max_backoff,
                                                self.rng())
        try:
            await self.queue.record_webhook(job, state, attempts, error, next_at)
        except StoreUnavailable:
            return  # its lease ends and it is tried again
        if self.metrics is not None:
            self.metrics.observe_webhook(result)

    async def aclose(self) -> None:
        for task in list(self._busy):
            task.cancel()
        await asyncio.gather(*self._busy, return_exceptions=True)
