"""The job worker: N concurrent executors over the queue, in `gateway worker` or inside
the gateway process (GATEWAY_JOBS_WORKERS).

    intake      take as many jobs as there are free executors (blocking up to a second)
    reclaim     every half visibility timeout: take over jobs whose worker stopped
                renewing them for a whole timeout (it died: kill -9, OOM, a lost host)
    heartbeat   every third of the visibility timeout: renew this worker's running
                jobs; one it no longer owns (taken over while this process stalled) is
                cancelled here, since its result would be refused anyway

Graceful stop (`stop()`, on SIGTERM): intake and reclaim stop taking jobs, the running
ones get GATEWAY_JOBS_SHUTDOWN_GRACE seconds to finish (the heartbeat keeps their leases
alive meanwhile), and whatever is still running then is cancelled and handed back to
the queue, where another worker starts it at once instead of after a visibility timeout.
A store outage pauses the loops (retrying every half second); nothing is lost, since
every job stays in the store until its outcome is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket

import structlog

from gateway.errors import StoreUnavailable
from gateway.jobs.runner import JobRunner
from gateway.stores.jobs import Delivery, JobQueue

log = structlog.get_logger("gateway.jobs")

TAKE_BLOCK = 1.0  # seconds one take waits for work
OUTAGE_PAUSE = 0.5


def consumer_name() -> str:
    """Unique per worker process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class JobWorker:
    """Runs jobs from `queue` with `concurrency` executors until stopped."""

    def __init__(self, queue: JobQueue, runner: JobRunner, concurrency: int,
                 visibility_timeout: float, consumer: str | None = None):
        self.queue = queue
        self.runner = runner
        self.concurrency = concurrency
        self.visibility = visibility_timeout
        self.consumer = consumer or consumer_name()
        self.running: dict[asyncio.Task[bool], Delivery] = {}
        self._stopping = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._intake(), name="jobs-intake"),
                       asyncio.create_task(self._reclaim(), name="jobs-reclaim")]
        self._heartbeat = asyncio.create_task(self._renew(), name="jobs-heartbeat")
        log.info("job_worker_started", consumer=self.consumer, concurrency=self.concurrency)

    @property
    def free(self) -> int:
        return self.concurrency - len(self.running)

    def _launch(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            task = asyncio.create_task(self.runner.run(delivery))
            self.running[task] = delivery
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[bool]) -> None:
        self.running.pop(task, None)
        self._slot_free.set()
        if not task.cancelled() and task.exception() is not None:
            # A store outage while writing the outcome: the job stays running in the
            # store, and is taken over once its lease ends.
            log.warning("job_run_failed", error=type(task.exception()).__name__)

    async def _wait_for_slot(self) -> None:
        while self.free <= 0 and not self._stopping.is_set():
            self._slot_free.clear()
            await self._slot_free.wait()

    async def _intake(self) -> None:
        while not self._stopping.is_set():
            await self._wait_for_slot()
            if self._stopping.is_set():
                return
            try:
                got = await self.queue.take(self.consumer, self.free, TAKE_BLOCK)
            except StoreUnavailable:
                await asyncio.sleep(OUTAGE_PAUSE)
                continue
            if self._stopping.is_set():  # stopped while waiting: give these back at once
                await self._hand_back(got)
                return
            self._launch(got)

    async def _reclaim(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.visibility / 2)
            if self._stopping.is_set() or self.free <= 0:
                continue
            try:
                got = await self.queue.reclaim(self.consumer, self.visibility, self.free)
            except StoreUnavailable:
                continue
            if got:
                log.info("jobs_reclaimed", count=len(got))
            self._launch(got)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.visibility / 3)
            running = dict(self.running)
            if not running:
                continue
            try:
                lost = await self.queue.renew(self.consumer, list(running.values()))
            except StoreUnavailable:
                continue
            lost_ids = {(d.job.id, d.token) for d in lost}
            for task, delivery in running.items():
                if (delivery.job.id, delivery.token) in lost_ids and not task.done():
                    log.info("job_lease_lost", job=delivery.job.id)
                    task.cancel()

    async def _hand_back(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            with contextlib.suppress(StoreUnavailable):  # else its lease runs out
                await self.queue.hand_back(delivery)

    async def stop(self, grace: float) -> None:
        """Stop taking jobs; let running ones finish for `grace` s; hand back the rest."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        self._stopping.set()
        self._slot_free.set()
        if getattr(self.queue, "cancel_safe_take", False):
            self._loops[0].cancel()  # nothing is lost by interrupting its wait
        # A take under way ends within TAKE_BLOCK; what it got is handed back at once.
        await asyncio.gather(*self._loops, return_exceptions=True)
        if self.running:
            await asyncio.wait(list(self.running), timeout=max(0.0, deadline - loop.time()))
        left = dict(self.running)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
        await self._hand_back(list(left.values()))
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        log.info("job_worker_stopped", consumer=self.consumer, handed_back=len(left))
