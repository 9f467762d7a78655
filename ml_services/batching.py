"""Micro-batching: many concurrent requests, one model call.

Use one `MicroBatcher` per model. Request handlers `await batcher.submit(texts)`; a single
collector task gathers whatever is queued into a batch of at most `max_batch_size` texts
(a request is never split: a request larger than that is a batch of its own), optionally
waits up to `max_wait_ms` for the batch to fill, and runs the model once on the whole
batch. Each caller then receives exactly the slice of results for its own texts.

Where the model runs: in the single worker thread of `executor`, so the event loop keeps
accepting and parsing requests while a batch computes, and requests arriving meanwhile
form the next batch. Batches of at most `inline_max_texts` texts run on the event loop
itself instead: for pure-Python models (VADER) handing off to a thread only adds GIL
contention and a thread hop, and a small batch blocks the loop for well under a millisecond.

Failure isolation: if a batch call raises, each request of the batch is re-run alone, so
only the request whose input breaks the model fails. Cancelled requests (client gone) are
skipped when a batch is formed and never receive a result.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, TypeVar

R = TypeVar("R")

# Called after every model call with (number of texts, seconds spent).
CallObserver = Callable[[int, float], None]


@dataclass(slots=True)
class _Job(Generic[R]):
    texts: Sequence[str]
    future: asyncio.Future[list[R]]


def _wake(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


class MicroBatcher(Generic[R]):
    """Gather concurrent `submit` calls into batched calls of `predict`."""

    def __init__(
        self,
        predict: Callable[[Sequence[str]], list[R]],
        *,
        max_batch_size: int,
        max_wait_ms: float = 0.0,
        executor: Executor | None = None,
        inline_max_texts: int = 0,
        on_call: CallObserver | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._predict = predict
        self._max_batch = max_batch_size
        self._max_wait = max_wait_ms / 1000.0
        self._executor = executor
        self._inline_max = inline_max_texts
        self._on_call = on_call
        self._queue: deque[_Job[R]] = deque()
        self._queued_texts = 0
        self._arrived: asyncio.Future[None] | None = None  # set when the queue gets a job
        self._filled: asyncio.Future[None] | None = None  # set when a batch is full
        self._worker: asyncio.Task[None] | None = None
        # Plain counters, for tests and for /metrics.
        self.model_calls = 0
        self.batches = 0
        self.texts = 0

    @property
    def alive(self) -> bool:
        """False once the collector task has stopped (closed or crashed)."""
        return self._worker is None or not self._worker.done()

    async def submit(self, texts: Sequence[str]) -> list[R]:
        """The model's results for `texts`, in order, computed within some batch."""
        loop = asyncio.get_running_loop()
        if self._worker is None:
            self._worker = loop.create_task(self._run(), name="micro-batcher")
        elif self._worker.done():
            raise RuntimeError("the batcher is closed")
        future: asyncio.Future[list[R]] = loop.create_future()
        self._queue.append(_Job(texts, future))
        self._queued_texts += len(texts)
        _wake(self._arrived)
        if self._queued_texts >= self._max_batch:
            _wake(self._filled)
        return await future

    async def close(self) -> None:
        """Stop the collector; requests still queued are cancelled."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while self._queue:
            self._queue.popleft().future.cancel()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._queue:
                    self._arrived = loop.create_future()
                    await self._arrived
                    self._arrived = None
                if self._max_wait > 0 and self._queued_texts < self._max_batch:
                    # Give the batch a moment to fill; a full batch ends the wait early.
                    self._filled = loop.create_future()
                    timer = loop.call_later(self._max_wait, _wake, self._filled)
                    await self._filled
                    timer.cancel()
                    self._filled = None
                jobs = self._take()
                if jobs:
                    await self._process(jobs)
        finally:
            for job in self._queue:
                job.future.cancel()

    def _take(self) -> list[_Job[R]]:
        """Pop the next batch: live jobs, in arrival order, up to `max_batch_size` texts."""
        jobs: list[_Job[R]] = []
        total = 0
        queue = self._queue
        while queue:
            job = queue[0]
            if job.future.done():  # cancelled while queued: drop it
                queue.popleft()
                self._queued_texts -= len(job.texts)
                continue
            if jobs and total + len(job.texts) > self._max_batch:
                break
            queue.popleft()
            self._queued_texts -= len(job.texts)
            jobs.append(job)
            total += len(job.texts)
        return jobs

    async def _process(self, jobs: list[_Job[R]]) -> None:
        self.batches += 1
        if len(jobs) == 1:
            texts: Sequence[str] = jobs[0].texts
        else:
            texts = [text for job in jobs for text in job.texts]
        try:
            results = await self._call(texts)
        except Exception as exc:
            if len(jobs) == 1:
                _fail(jobs[0], exc)
                return
            # Someone's input broke the batch: re-run each request alone to find out whom.
            for job in jobs:
                if job.future.done():
                    continue
                try:
                    alone = await self._call(job.texts)
                except Exception as job_exc:
                    _fail(job, job_exc)
                else:
                    _deliver(job, alone)
            return
        start = 0
        for job in jobs:
            end = start + len(job.texts)
            _deliver(job, results[start:end])
            start = end

    async def _call(self, texts: Sequence[str]) -> list[R]:
        if len(texts) <= self._inline_max:
            return self._timed(texts)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._timed, texts)

    def _timed(self, texts: Sequence[str]) -> list[R]:
        started = time.perf_counter()
        results = self._predict(texts)
        elapsed = time.perf_counter() - started
        if len(results) != len(texts):
            raise RuntimeError(f"model returned {len(results)} results for {len(texts)} texts")
        self.model_calls += 1
        self.texts += len(texts)
        if self._on_call is not None:
            self._on_call(len(texts), elapsed)
        return results


def _deliver(job: _Job[R], results: list[R]) -> None:
    if not job.future.done():
        job.future.set_result(results)


def _fail(job: _Job[R], exc: Exception) -> None:
    if not job.future.done():
        job.future.set_exception(exc)
