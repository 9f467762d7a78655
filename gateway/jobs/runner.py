"""One job, run: the request replayed through the upstream client as the synchronous call
would have gone, and its outcome written (fenced by the attempt's token).

The route is looked up by name in the config current when the job starts, so a job
runs with the route's timeouts, retries, fallbacks, circuit breakers and health checks
of that moment; a route removed (or no longer `async:`) meanwhile, a tenant disabled
meanwhile, and a job started more than `max_attempts` times (its workers kept dying)
fail with a problem instead. Outcomes:

    upstream answered < 400     succeeded, with the answer (status, headers, body)
    upstream answered 4xx       failed, with the answer (the upstream refused the input)
    no answer (502, 503, 504)   failed, with the problem the sync call would have had

The answer is read whole, up to GATEWAY_JOBS_MAX_RESULT_BYTES (larger: a 502 problem).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from gateway.config.runtime import ConfigHolder
from gateway.context import Principal, RequestContext
from gateway.errors import Forbidden, GatewayError, NotFound, UpstreamError
from gateway.jobs.records import JobRequest, Outcome
from gateway.logging import end_request_fields, start_request_fields
from gateway.metrics import GatewayMetrics
from gateway.proxy_response import ProxyResponse
from gateway.stores.jobs import Delivery, JobQueue
from gateway.upstream import UpstreamClient

log = structlog.get_logger("gateway.jobs")

ROUTE_GONE = "route {route!r} no longer exists or no longer runs jobs"
TENANT_GONE = "tenant {tenant!r} is unknown or disabled"
LOST = "the job was started {n} times without finishing: its workers were lost"
UNREADABLE = "the job's stored request could not be read"
TOO_LARGE = "the upstream's answer exceeds {limit} bytes"
DEFAULT_RESULT_TTL = 86_400.0


class _Failed(Exception):
    def __init__(self, error: GatewayError):
        self.error = error


async def _read_answer(response: ProxyResponse, limit: int) -> bytes:
    if response.body is not None:
        if len(response.body) > limit:
            raise _Failed(UpstreamError(TOO_LARGE.format(limit=limit)))
        return response.body
    assert response.stream is not None
    chunks, size = [], 0
    try:
        async for chunk in response.stream:
            size += len(chunk)
            if size > limit:
                raise _Failed(UpstreamError(TOO_LARGE.format(limit=limit)))
            chunks.append(chunk)
    finally:
        if response.release is not None:
            await response.release()
    return b"".join(chunks)


class JobRunner:
    """Runs deliveries; `observe` gets what the metrics need of each."""

    def __init__(self, holder: ConfigHolder, upstream: UpstreamClient, queue: JobQueue,
                 max_result_bytes: int, metrics: GatewayMetrics | None = None,
                 on_upstream_call: Callable[[], None] | None = None):
        self.holder = holder
        self.upstream = upstream
        self.queue = queue
        self.max_result_bytes = max_result_bytes
        self.metrics = metrics
        self.on_upstream_call = on_upstream_call  # counts upstream calls (tests, bench)

    async def run(self, delivery: Delivery) -> bool:
        """Run one delivery to its outcome; True when this attempt's outcome was written."""
        job = delivery.job
        config = self.holder.current
        route = config.routes.get(job.route)
        ttl = route.spec.async_.result_ttl if route and route.spec.async_ \
            else DEFAULT_RESULT_TTL
        ctx: RequestContext | None = None
        request_id = ""
        try:
            try:
                request = JobRequest.decode(job.request)
            except (ValueError, KeyError, TypeError):
                raise _Failed(GatewayError(UNREADABLE)) from None
            request_id = request.request_id
            start_request_fields(request_id=request_id, job=job.id, tenant=job.tenant)
            if route is None or route.spec.async_ is None:
                raise _Failed(NotFound(ROUTE_GONE.format(route=job.route)))
            if job.attempts > route.spec.async_.max_attempts:
                raise _Failed(GatewayError(LOST.format(n=job.attempts - 1)))
            tenant = config.tenants.get(job.tenant)
            if tenant is None or not tenant.enabled:
                raise _Failed(Forbidden(TENANT_GONE.format(tenant=job.tenant)))
            ctx = RequestContext(
                request_id=request_id, config=config, route=route,
                path_params=request.params, method=request.method, path=request.path,
                query=request.query.encode("latin-1"),
                headers=[(k.encode("latin-1"), v.encode("latin-1"))
                         for k, v in request.headers],
                client_ip=request.client_ip, started=time.perf_counter(),
                principal=Principal(job.tenant, request.credential, request.kind,
                                    frozenset(request.scopes)))
            if self.on_upstream_call is not None:
                self.on_upstream_call()
            try:
                response = await self.upstream.send(ctx, job.body or None)
            except GatewayError as exc:
                raise _Failed(exc) from None
            body = await _read_answer(response, self.max_result_bytes)
            outcome = Outcome(response.status, [(k.decode("latin-1"), v.decode("latin-1"))
                                                 for k, v in response.headers], body)
            status = "succeeded" if response.status < 400 else "failed"
        except _Failed as failed:
            outcome = Outcome.of_error(failed.error, request_id)
            status = "failed"
        written = await self.queue.finish(delivery, status, outcome.encode(), ttl)
        if not written:
            log.info("job_result_stale", job=job.id, token=delivery.token)
        else:
            log.debug("job_finished", job=job.id, status=status, attempts=job.attempts)
        if self.metrics is not None:
            self.metrics.observe_job(ctx, job.route, status, written, job.created,
                                     job.started, job.attempts == 1)
        end_request_fields()
        return written
