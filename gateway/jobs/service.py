"""What one process runs for the queue: a `JobWorker` and a `WebhookSender`, started and
stopped together (the gateway's lifespan for in-process workers, `gateway worker`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from gateway.auth.key_store import KeyStore
from gateway.auth.webhook_secrets import load_webhook_key
from gateway.config.runtime import ConfigHolder
from gateway.jobs.runner import JobRunner
from gateway.jobs.webhooks import WebhookSender
from gateway.jobs.worker import JobWorker
from gateway.metrics import GatewayMetrics
from gateway.settings import Settings
from gateway.stores.jobs import JobQueue
from gateway.upstream import UpstreamClient


class JobService:
    """`concurrency` executors and the webhook sender over `queue`."""

    def __init__(self, settings: Settings, holder: ConfigHolder, queue: JobQueue,
                 upstream: UpstreamClient, keys: Callable[[], KeyStore], concurrency: int,
                 metrics: GatewayMetrics | None = None,
                 on_upstream_call: Callable[[], None] | None = None):
        self.settings = settings
        self.holder = holder
        self.queue = queue
        self.keys = keys  # the process's key store, once its owner has opened it
        self.metrics = metrics
        runner = JobRunner(holder, upstream, queue, settings.jobs_max_result_bytes,
                           metrics, on_upstream_call)
        self.worker = JobWorker(queue, runner, concurrency, settings.jobs_visibility_timeout)
        self._http: httpx.AsyncClient | None = None
        self._sender: WebhookSender | None = None
        self._sending: asyncio.Task[None] | None = None

    async def start(self) -> None:
        s = self.settings
        key = load_webhook_key(s.webhook_key.get_secret_value() if s.webhook_key else None,
                               s.data_dir)
        self._http = httpx.AsyncClient(follow_redirects=False)
        self._sender = WebhookSender(
            self.queue, self.holder, self.keys(), key, self._http,
            max_attempts=s.webhook_max_attempts, backoff=s.webhook_backoff,
            max_backoff=s.webhook_max_backoff, timeout=s.webhook_timeout,
            metrics=self.metrics)
        self.worker.start()
        self._sending = asyncio.create_task(self._sender.run(), name="webhooks")

    async def stop(self, grace: float | None = None) -> None:
        await self.worker.stop(self.settings.jobs_shutdown_grace if grace is None else grace)
        if self._sending is not None:
            self._sending.cancel()
            await asyncio.gather(self._sending, return_exceptions=True)
        if self._sender is not None:
            await self._sender.aclose()
        if self._http is not None:
            await self._http.aclose()
