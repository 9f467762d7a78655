"""Submission, polling, listing and cancelling through a real gateway (memory queue,
in-process workers) in front of a real backend."""

from __future__ import annotations

import re
import time

import pytest

from tests.jobs.conftest import wait_job, write_job_setup

ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
def gw(tmp_path, backend, start_jobs):
    write_job_setup(tmp_path, backend.url)
    return start_jobs(jobs_workers=2)


def test_prefer_respond_async_answers_202_then_the_job_holds_the_upstreams_answer(
        gw, backend, as_tenant):
    headers = {**as_tenant("acme"), **ASYNC, "traceparent":
               "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
               "X-Request-ID": "req-async-1"}
    r = gw.client.post("/v1/predict/echo?x=1", content=b'{"text": "hi"}', headers=headers)
    assert r.status_code == 202, r.text
    assert r.headers["preference-applied"] == "respond-async"
    assert r.headers["retry-after"] == "1"
    body = r.json()
    assert re.fullmatch(r"job_[A-Za-z0-9_-]{22}", body["id"])
    assert r.headers["location"] == f"/v1/jobs/{body['id']}" == body["links"]["self"]
    assert body["status"] in ("queued", "running")
    done = wait_job(gw.client, r.headers["location"], as_tenant("acme"))
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert done["created"] <= done["started"] <= done["finished"]
    result = done["result"]
    assert result["status"] == 200 and result["headers"]["x-backend"] == "primary"
    seen = result["body"]  # the echo backend's record of the request it got
    assert seen["path"] == "/echo" and seen["query"] == "x=1" and seen["method"] == "POST"
    assert seen["body"] == '{"text": "hi"}'
    assert seen["headers"]["x-tenant-id"] == "acme"
    assert seen["headers"]["x-request-id"] == "req-async-1"
    assert seen["headers"]["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")
    for secret in ("authorization", "x-api-key", "prefer"):
        assert secret not in seen["headers"]
    # The same route without the preference answers synchronously.
    sync = gw.client.post("/v1/predict/echo", content=b"{}", headers=as_tenant("acme"))
    assert sync.status_code == 200 and sync.json()["path"] == "/echo"
    assert "preference-applied" not in sync.headers


def test_an_async_only_route_makes_every_request_a_job_and_sync_routes_ignore_prefer(
        gw, as_tenant):
    r = gw.client.post("/v1/batch/echo", content=b"x", headers=as_tenant("acme"))
    assert r.status_code == 202 and "preference-applied" not in r.headers
    assert wait_job(gw.client, r.headers["location"], as_tenant("acme"))["status"] \
        == "succeeded"
    r = gw.client.post("/v1/sync/echo", content=b"x", headers={**as_tenant("acme"), **ASYNC})
    assert r.status_code == 200 and "preference-applied" not in r.headers


def test_a_job_is_its_tenants_alone_and_unknown_ids_are_404(gw, as_tenant):
    r = gw.client.post("/v1/predict/echo", content=b"{}", headers={**as_tenant("acme"), **ASYNC})
    location = r.headers["location"]
    for headers, path in [(as_tenant("globex"), location),
                          (as_tenant("acme"), "/v1/jobs/job_" + "A" * 22),
                          (as_tenant("acme"), "/v1/jobs/not-a-job-id")]:
        for method in ("GET", "DELETE"):
            answer = gw.client.request(method, path, headers=headers)
            assert answer.status_code == 404, (method, path)
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json()["request_id"] == answer.headers["x-request-id"]
    assert gw.client.get(location).status_code == 401
    assert gw.client.get(location, headers={"Authorization": "Bearer gw_nope_x"}
                         ).status_code == 401
    assert gw.client.post(location, headers=as_tenant("acme")).status_code == 405
    assert wait_job(gw.client, location, as_tenant("acme"))["status"] == "succeeded"


def test_failed_jobs_carry_the_upstreams_refusal_or_the_gateways_problem(gw, as_tenant):
    h = {**as_tenant("acme"), **ASYNC}
    refused = gw.client.post("/v1/predict/status/422", content=b"{}", headers=h)
    done = wait_job(gw.client, refused.headers["location"], as_tenant("acme"))
    assert done["status"] == "failed" and done["result"]["status"] == 422
    broken = gw.client.post("/v1/predict/status/500", content=b"{}", headers=h)
    done = wait_job(gw.client, broken.headers["location"], as_tenant("acme"))
    assert done["status"] == "failed" and "result" not in done
    problem = done["problem"]
    assert problem["status"] == 502 and problem["type"] == "/problems/bad-gateway"
    assert problem["detail"] == "upstream answered 500"


def test_delete_cancels_a_queued_job_only(tmp_path, backend, start_jobs, as_tenant):
    write_job_setup(tmp_path, backend.url)
    gw = start_jobs(jobs_workers=1)
    h = {**as_tenant("acme"), **ASYNC}
    slow = gw.client.post("/v1/predict/slow?delay=1", content=b"{}", headers=h)
    wait_job(gw.client, slow.headers["location"], as_tenant("acme"), until=("running",))
    queued = gw.client.post("/v1/predict/echo", content=b"{}", headers=h)
    before = backend.hits["/echo"]
    r = gw.client.delete(queued.headers["location"], headers=as_tenant("acme"))
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert "retry-after" not in r.headers
    busy = gw.client.delete(slow.headers["location"], headers=as_tenant("acme"))
    assert busy.status_code == 409 and busy.json()["status"] == 409
    assert "running" in busy.json()["detail"]
    assert wait_job(gw.client, slow.headers["location"], as_tenant("acme"))["status"] \
        == "succeeded"
    time.sleep(0.2)
    assert backend.hits["/echo"] == before  # the cancelled job never ran
    assert gw.client.get(queued.headers["location"], headers=as_tenant("acme")
                         ).json()["status"] == "cancelled"


def test_a_tenants_cap_on_queued_jobs_answers_429(tmp_path, backend, start_jobs, as_tenant):
    write_job_setup(tmp_path, backend.url)
    gw = start_jobs(jobs_workers=1)
    h = {**as_tenant("tiny"), **ASYNC}  # its tier: max_queued_jobs 2
    first = gw.client.post("/v1/predict/slow?delay=0.5", content=b"{}", headers=h)
    second = gw.client.post("/v1/predict/slow?delay=0.5", content=b"{}", headers=h)
    assert first.status_code == second.status_code == 202
    full = gw.client.post("/v1/predict/echo", content=b"{}", headers=h)
    assert full.status_code == 429 and full.headers["retry-after"] == "5"
    assert full.json()["detail"] == "more than 2 jobs queued or running"
    assert gw.client.post("/v1/predict/echo", content=b"{}", headers={
        **as_tenant("acme"), **ASYNC}).status_code == 202  # another tenant is not held up
    wait_job(gw.client, second.headers["location"], as_tenant("tiny"))
    assert gw.client.post("/v1/predict/echo", content=b"{}", headers=h).status_code == 202


def test_the_listing_pages_a_tenants_jobs_and_filters_them(gw, as_tenant):
    h = {**as_tenant("acme"), **ASYNC}
    made = [gw.client.post("/v1/predict/echo", content=b"%d" % i, headers=h).json()["id"]
            for i in range(5)]
    failing = gw.client.post("/v1/predict/status/500", content=b"{}", headers=h).json()["id"]
    gw.client.post("/v1/predict/echo", content=b"{}", headers={**as_tenant("globex"), **ASYNC})
    for job_id in [*made, failing]:
        wait_job(gw.client, f"/v1/jobs/{job_id}", as_tenant("acme"))
    page = gw.client.get("/v1/jobs?limit=4", headers=as_tenant("acme")).json()
    assert [j["id"] for j in page["jobs"]] == [failing, *made[::-1][:3]]
    assert "result" not in page["jobs"][0]
    rest = gw.client.get(page["next"], headers=as_tenant("acme")).json()
    assert [j["id"] for j in rest["jobs"]] == made[::-1][3:] and rest["next"] is None
    failed = gw.client.get("/v1/jobs?status=failed", headers=as_tenant("acme")).json()
    assert [j["id"] for j in failed["jobs"]] == [failing]
    for query in ("status=done", "limit=0", "limit=x", "before=yesterday", "webhook=lost"):
        bad = gw.client.get(f"/v1/jobs?{query}", headers=as_tenant("acme"))
        assert bad.status_code == 400, query
        assert bad.headers["content-type"] == "application/problem+json"
    other = gw.client.get("/v1/jobs", headers=as_tenant("globex")).json()
    assert len(other["jobs"]) == 1


def test_callback_urls_must_be_under_a_prefix_the_tenant_is_allowed(gw, as_tenant):
    h = {**as_tenant("acme"), **ASYNC}
    for url in ("http://127.0.0.1:1/elsewhere", "http://127.0.0.1:2/hooks/x",
                "http://127.0.0.1:1/hooksx", "http://127.0.0.1:1@evil.example/hooks/",
                "ftp://127.0.0.1:1/hooks/", "not a url"):
        r = gw.client.post("/v1/predict/echo", content=b"{}",
                           headers={**h, "Callback-URL": url})
        assert r.status_code == 422, url
        assert r.headers["content-type"] == "application/problem+json"
    # A tenant with no webhooks section may give none.
    r = gw.client.post("/v1/predict/echo", content=b"{}", headers={
        **as_tenant("globex"), **ASYNC, "Callback-URL": "http://127.0.0.1:1/hooks/a"})
    assert r.status_code == 422
    # A synchronous request with a callback is refused, not silently ignored.
    r = gw.client.post("/v1/predict/echo", content=b"{}", headers={
        **as_tenant("acme"), "Callback-URL": "http://127.0.0.1:1/hooks/a"})
    assert r.status_code == 422 and "asynchronous" in r.json()["detail"]
    ok = gw.client.post("/v1/predict/echo", content=b"{}",
                        headers={**h, "Callback-URL": "http://127.0.0.1:1/hooks/a?job=1"})
    assert ok.status_code == 202
