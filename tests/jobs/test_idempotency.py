"""Idempotency-Key on sync and async POSTs, memory and Redis, through a real gateway."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.jobs.conftest import wait_job, write_job_setup

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(params=["memory", "redis"])
def gw(request, tmp_path, backend, start_jobs, redis_server):
    write_job_setup(tmp_path, backend.url)
    extra = {"redis_url": redis_server.url} if request.param == "redis" else {}
    return start_jobs(jobs_workers=2, **extra)


async def _at_once(url: str, n: int, path: str, headers: dict[str, str], body: bytes
                   ) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        return list(await asyncio.gather(*(client.post(path, content=body, headers=headers)
                                           for _ in range(n))))


def test_fifty_identical_async_submissions_at_once_make_one_job(gw, backend, as_tenant):
    headers = {**as_tenant("acme"), **ASYNC, "Idempotency-Key": '"order-4711"'}
    before = backend.hits["/fifty"]
    answers = asyncio.run(_at_once(gw.url, 50, "/v1/predict/fifty", headers, b'{"n": 1}'))
    assert {r.status_code for r in answers} == {202}
    ids = {r.json()["id"] for r in answers}
    assert len(ids) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in answers) == 49
    done = wait_job(gw.client, answers[0].headers["location"], as_tenant("acme"))
    assert done["status"] == "succeeded"
    assert backend.hits["/fifty"] - before == 1
    listed = gw.client.get("/v1/jobs", headers=as_tenant("acme")).json()["jobs"]
    assert [j["id"] for j in listed] == list(ids)
    # Same key, another body: refused; another tenant's same key: its own job.
    other = gw.client.post("/v1/predict/fifty", content=b'{"n": 2}', headers=headers)
    assert other.status_code == 422 and other.json()["type"] == "/problems/unprocessable-content"
    theirs = gw.client.post("/v1/predict/fifty", content=b'{"n": 1}', headers={
        **as_tenant("globex"), **ASYNC, "Idempotency-Key": '"order-4711"'})
    assert theirs.status_code == 202 and theirs.json()["id"] not in ids


def test_a_sync_answer_is_replayed_without_a_second_upstream_call(gw, backend, as_tenant):
    headers = {**as_tenant("acme"), "Idempotency-Key": "pay-1"}
    first = gw.client.post("/v1/sync/pay", content=b"amount=5", headers=headers)
    assert first.status_code == 200 and "idempotent-replayed" not in first.headers
    hits = backend.hits["/pay"]
    again = gw.client.post("/v1/sync/pay", content=b"amount=5", headers=headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content and backend.hits["/pay"] == hits
    changed = gw.client.post("/v1/sync/pay", content=b"amount=6", headers=headers)
    assert changed.status_code == 422
    # The same key asking for a job is another request too.
    assert gw.client.post("/v1/predict/pay", content=b"amount=5", headers={
        **headers, **ASYNC}).status_code in (202, 422)
    for bad in ("", "\x7f", "x" * 300):
        r = gw.client.post("/v1/sync/pay", content=b"amount=5",
                           headers={**as_tenant("acme"), "Idempotency-Key": bad})
        assert r.status_code == 422, repr(bad)


def test_a_duplicate_while_the_first_runs_is_409_and_a_5xx_is_not_kept(gw, backend, as_tenant):
    headers = {**as_tenant("acme"), "Idempotency-Key": "slow-1"}
    answers = asyncio.run(_at_once(gw.url, 2, "/v1/sync/slow?delay=0.5", headers, b"{}"))
    assert sorted(r.status_code for r in answers) == [200, 409]
    busy = next(r for r in answers if r.status_code == 409)
    assert busy.headers["retry-after"] == "1"
    assert busy.headers["content-type"] == "application/problem+json"
    key = {**as_tenant("acme"), "Idempotency-Key": "flaky-1"}
    hits = backend.hits["/status/503"]
    for _ in range(2):
        assert gw.client.post("/v1/sync/status/503", content=b"{}", headers=key
                              ).status_code == 502
    assert backend.hits["/status/503"] - hits == 2  # a failure frees the key for a retry
