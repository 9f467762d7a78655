"""One suite for both job stores, memory and a real (throwaway) Redis: submission with
caps and Idempotency-Keys, fencing tokens, cancellation, listing, webhook scheduling and
the synchronous Idempotency-Key claims."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from gateway.stores import connect_mux, connect_redis
from gateway.stores.breaker import StoreBreaker
from gateway.stores.jobs import IdempotencyClaim, Job, micros
from gateway.stores.jobs_memory import MemoryJobStore
from gateway.stores.jobs_redis import RedisJobStore
from tests.processes import RedisServer


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server.url
    server.stop()


@pytest.fixture(params=["memory", "redis"])
def jobs(request: pytest.FixtureRequest, redis_url: str) -> Any:
    """Opens a job store of one kind inside the test's event loop (Redis: emptied after)."""

    @contextlib.asynccontextmanager
    async def open_store() -> AsyncIterator[Any]:
        if request.param == "memory":
            yield MemoryJobStore(list_keep=100)
            return
        mux = connect_mux(redis_url, 1.0)
        blocking = connect_redis(redis_url, 5.0)
        try:
            yield RedisJobStore(mux, StoreBreaker("redis", 3, 1.0, None), blocking,
                                maxlen=100_000, list_keep=100)
        finally:
            await mux.execute("FLUSHDB")
            await mux.aclose()
            await blocking.aclose()

    return open_store


def run(coro: Any) -> Any:
    return asyncio.run(coro)


_n = 0


def job(tenant: str = "acme", callback: str = "", created: float | None = None) -> Job:
    global _n
    _n += 1
    return Job(id=f"job_{_n:022d}", tenant=tenant, route="r", status="queued",
               created=created if created is not None else time.time(),
               request=b'{"r": 1}', body=b"body-%d" % _n, callback=callback)


def test_a_job_goes_queued_running_succeeded_and_a_stale_attempt_changes_nothing(jobs):
    async def go() -> None:
        async with jobs() as store:
            j = job()
            assert await store.submit(j, 10, None) == ("created", j.id)
            got = await store.get(j.id)
            assert (got.status, got.body, got.attempts, got.token) == ("queued", j.body, 0, 0)
            [first] = await store.take("w1", 5, 1.0)
            assert (first.job.id, first.token, first.job.status) == (j.id, 1, "running")
            assert first.job.body == j.body and first.job.request == j.request
            # Handed back (a worker stopping) and started again: a new token.
            assert await store.hand_back(first)
            assert (await store.get(j.id)).status == "queued"
            [second] = await store.take("w2", 5, 1.0)
            assert second.token == 2 and second.job.attempts == 1  # the hand-back gave one back
            assert not await store.hand_back(first)  # stale: not its job any more
            assert not await store.finish(first, "succeeded", b"old", 60)
            assert await store.finish(second, "succeeded", b"new", 60)
            assert not await store.finish(second, "failed", b"again", 60)  # exactly once
            done = await store.get(j.id)
            assert (done.status, done.outcome, done.body) == ("succeeded", b"new", b"")
            assert done.finished is not None and done.started is not None
            assert await store.take("w1", 5, 0.05) == []
    run(go())


def test_the_cap_counts_jobs_queued_or_running_per_tenant(jobs):
    async def go() -> None:
        async with jobs() as store:
            a, b, c = job(), job(), job()
            assert (await store.submit(a, 2, None))[0] == "created"
            assert (await store.submit(b, 2, None))[0] == "created"
            assert (await store.submit(c, 2, None))[0] == "full"
            assert (await store.submit(job("other"), 2, None))[0] == "created"
            assert await store.depth() == (3, 0)
            started = await store.take("w", 1, 1.0)
            assert (await store.submit(c, 2, None))[0] == "full"  # running still counts
            assert await store.depth() == (2, 1)
            await store.finish(started[0], "succeeded", b"", 60)
            assert (await store.submit(c, 2, None))[0] == "created"
            assert await store.get(c.id) is not None
    run(go())


def test_an_idempotency_key_names_one_job_even_when_submitted_at_once(jobs):
    async def go() -> None:
        async with jobs() as store:
            claim = IdempotencyClaim("acme:k1", "fp-1", 3600)
            attempts = [job() for _ in range(50)]
            results = await asyncio.gather(*(store.submit(j, 1000, claim) for j in attempts))
            created = [r for r in results if r[0] == "created"]
            assert len(created) == 1
            assert {r[1] for r in results} == {created[0][1]}
            assert all(r[0] == "existing" for r in results if r is not created[0])
            other = await store.submit(job(), 1000, IdempotencyClaim("acme:k1", "fp-2", 3600))
            assert other == ("mismatch", "")
            # Another tenant's key is another key.
            assert (await store.submit(job("b"), 1000,
                                       IdempotencyClaim("b:k1", "fp-1", 3600)))[0] == "created"
            queued, _ = await store.depth()
            assert queued == 2
    run(go())


def test_cancel_takes_a_queued_job_off_the_queue_only(jobs):
    async def go() -> None:
        async with jobs() as store:
            a, b = job(), job()
            await store.submit(a, 10, None)
            await store.submit(b, 10, None)
            assert await store.cancel("someone-else", a.id, 60) == ""
            assert await store.cancel("acme", a.id, 60) == "cancelled"
            assert await store.cancel("acme", a.id, 60) == "cancelled"  # not queued now
            [running] = await store.take("w", 5, 1.0)
            assert running.job.id == b.id  # the cancelled one is skipped
            assert await store.cancel("acme", b.id, 60) == "running"
            assert (await store.get(a.id)).status == "cancelled"
            assert await store.cancel("acme", "job_nope", 60) == ""
    run(go())


def test_recent_lists_a_tenants_jobs_newest_first_in_pages(jobs):
    async def go() -> None:
        async with jobs() as store:
            base = time.time() - 100
            made = [job(created=base + i) for i in range(7)]
            for j in made:
                await store.submit(j, 100, None)
            await store.submit(job("other", created=base + 50), 100, None)
            page = await store.recent("acme", None, 3)
            assert [j.id for j in page] == [j.id for j in made[::-1][:3]]
            page2 = await store.recent("acme", micros(page[-1].created), 3)
            assert [j.id for j in page2] == [j.id for j in made[::-1][3:6]]
            rest = await store.recent("acme", micros(page2[-1].created), 3)
            assert [j.id for j in rest] == [made[0].id]
    run(go())


def test_a_finished_job_with_a_callback_is_due_for_its_webhook_until_final(jobs):
    async def go() -> None:
        async with jobs() as store:
            j = job(callback="https://hooks.example/x")
            await store.submit(j, 10, None)
            [d] = await store.take("w", 1, 1.0)
            assert await store.due_webhooks(time.time(), 5, 10) == []  # not finished yet
            await store.finish(d, "succeeded", b"out", 60)
            [due] = await store.due_webhooks(time.time() + 0.01, 5, 10)
            assert (due.id, due.webhook, due.outcome) == (j.id, "pending", b"out")
            # Leased: not handed out again while its delivery runs.
            assert await store.due_webhooks(time.time() + 0.01, 5, 10) == []
            await store.record_webhook(due, "pending", 1, "answered 500", time.time() + 0.2)
            assert await store.due_webhooks(time.time() + 0.01, 5, 10) == []
            [again] = await store.due_webhooks(time.time() + 0.3, 5, 10)
            assert (again.webhook_attempts, again.webhook_error) == (1, "answered 500")
            await store.record_webhook(again, "dead", 2, "answered 500", None)
            assert await store.due_webhooks(time.time() + 100, 5, 10) == []
            assert (await store.get(j.id)).webhook == "dead"
    run(go())


def test_idempotency_claims_of_synchronous_requests(jobs):
    async def go() -> None:
        async with jobs() as store:
            claim = IdempotencyClaim("acme:k", "fp", 3600)
            assert await store.claim(claim, 30) == ("new", b"")
            assert await store.claim(claim, 30) == ("busy", b"")
            assert (await store.claim(IdempotencyClaim("acme:k", "other", 60), 30))[0] \
                == "mismatch"
            await store.complete(claim, b"the answer")
            assert await store.claim(claim, 30) == ("done", b"the answer")
            freed = IdempotencyClaim("acme:k2", "fp", 3600)
            assert (await store.claim(freed, 30))[0] == "new"
            await store.release(freed)
            assert (await store.claim(freed, 30))[0] == "new"
            # A key an asynchronous submission holds is another request's.
            await store.submit(job(), 10, IdempotencyClaim("acme:k3", "fp", 3600))
            assert (await store.claim(IdempotencyClaim("acme:k3", "fp", 3600), 30))[0] \
                == "mismatch"
    run(go())


def test_redis_a_dead_workers_job_is_taken_over_and_its_late_result_refused(redis_url):
    async def go() -> None:
        mux = connect_mux(redis_url, 1.0)
        blocking = connect_redis(redis_url, 5.0)
        store = RedisJobStore(mux, StoreBreaker("redis", 3, 1.0, None), blocking,
                              maxlen=1000, list_keep=100)
        try:
            j = job()
            await store.submit(j, 10, None)
            [mine] = await store.take("dying", 1, 1.0)
            assert await store.reclaim("rescuer", 0.2, 10) == []  # not idle long enough
            assert await store.renew("dying", [mine]) == []  # alive: its lease is renewed
            await asyncio.sleep(0.3)
            [theirs] = await store.reclaim("rescuer", 0.2, 10)
            assert theirs.job.id == j.id and theirs.token == 2 and theirs.job.attempts == 2
            assert await store.renew("dying", [mine]) == [mine]  # it learns it lost the job
            assert not await store.finish(mine, "succeeded", b"late", 60)
            assert await store.finish(theirs, "succeeded", b"fresh", 60)
            assert (await store.get(j.id)).outcome == b"fresh"
            assert await store.depth() == (0, 0)
            assert await mux.execute("XLEN", "gw:{jobs}:stream") == 0  # acked and deleted
        finally:
            await mux.execute("FLUSHDB")
            await mux.aclose()
            await blocking.aclose()
    run(go())
