"""Submission: the policy that turns an asynchronous request into a job and answers 202.

It runs after authentication, authorization, rate limiting (a job is charged as the
synchronous call would be) and the Idempotency-Key step, and before the cache: an
asynchronous request never reads or fills the cache. What it does:

    Callback-URL        checked against the tenant's `webhooks.allowed_urls` (422)
    the job             tenant, route, the request to replay (method, path, query, path
                        parameters, the client's headers minus credentials, body, request
                        id, client address; its traceparent continues the trace)
    submit              one store call: the per-tenant cap on jobs queued or running
                        (`max_queued_jobs`, else GATEWAY_JOBS_MAX_QUEUED: 429), the
                        Idempotency-Key (the same job again, or 422), the enqueue
    answer              202 Accepted, Location: /v1/jobs/{id}, Retry-After: 1,
                        Preference-Applied: respond-async (when Prefer asked for it), and
                        {"id", "status", "links"}

A store outage is a 503 whatever GATEWAY_STORE_FAIL_MODE says: a job cannot be accepted
without somewhere to keep it.
"""

from __future__ import annotations

import time

import orjson

from gateway.config.runtime import CompiledRoute
from gateway.context import RequestContext
from gateway.errors import RateLimited, UnprocessableContent
from gateway.jobs.callbacks import check_callback
from gateway.jobs.records import JobRequest, job_link, new_job_id, stored_headers
from gateway.pipeline import Policy
from gateway.prefer import RESPOND_ASYNC, runs_as_job
from gateway.proxy_response import ProxyResponse
from gateway.stores import Stores
from gateway.stores.jobs import Job

TOO_MANY_JOBS = "more than {cap} jobs queued or running"
QUEUE_FULL_RETRY = 5  # seconds: a queue drains at the workers' pace, not a window's


class AsyncJobPolicy(Policy):
    """Answers an asynchronous request of an `async:` route with a job (see above)."""

    name = "jobs"

    def __init__(self, stores: Stores, default_cap: int):
        self.store = stores.jobs
        self.default_cap = default_cap

    def applies_to(self, route: CompiledRoute) -> bool:
        return route.spec.async_ is not None

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        asynchronous, applied = runs_as_job(ctx.route, ctx.headers)
        callback = ctx.header(b"callback-url")
        if not asynchronous:
            if callback is not None:
                raise UnprocessableContent(UnprocessableContent.CALLBACK_SYNC)
            return None
        principal = ctx.principal
        assert principal is not None  # async routes are never public (config refuses it)
        tenant = principal.tenant_id
        url = ""
        if callback is not None:
            allowed = ctx.config.tenants[tenant].webhooks.allowed_urls
            url = check_callback(callback.decode("latin-1"), allowed)
        request = JobRequest(
            ctx.method, ctx.path, ctx.query.decode("latin-1"), ctx.path_params,
            stored_headers(ctx.headers), ctx.client_ip, ctx.request_id,
            principal.credential_id, principal.kind, sorted(principal.scopes))
        job = Job(id=new_job_id(), tenant=tenant, route=ctx.route.name, status="queued",
                  created=time.time(), request=request.encode(), body=ctx.body or b"",
                  callback=url)
        cap = ctx.config.limits.lookup(tenant, ctx.route.name).max_queued_jobs \
            or self.default_cap
        result, job_id = await self.store.submit(job, cap, ctx.idempotency)
        if result == "full":
            raise RateLimited(TOO_MANY_JOBS.format(cap=cap), QUEUE_FULL_RETRY)
        if result == "mismatch":
            raise UnprocessableContent(UnprocessableContent.KEY_REUSED)
        status = "queued"
        if result == "existing":
            found = await self.store.get(job_id)
            status = found.status if found is not None else status
        ctx.job_id, ctx.job_created = job_id, result == "created"
        link = job_link(job_id).encode()
        headers = [(b"content-type", b"application/json"), (b"location", link),
                   (b"retry-after", b"1")]
        if applied:
            headers.append((b"preference-applied", RESPOND_ASYNC.encode()))
        if result == "existing":
            headers.append((b"idempotent-replayed", b"true"))
        body = orjson.dumps({"id": job_id, "status": status,
                             "links": {"self": link.decode()}})
        headers.append((b"content-length", str(len(body)).encode()))
        return ProxyResponse(202, headers, body=body, source="job")
