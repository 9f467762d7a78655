"""The job API: GET and DELETE /v1/jobs/{id}, GET /v1/jobs. Gateway endpoints (reserved
paths), authenticated as every route is, tenant-scoped.

    GET    /v1/jobs/{id}    the job: status, times, attempts, result or problem, webhook;
                            Retry-After: 1 while it is queued or running
    DELETE /v1/jobs/{id}    cancel a queued job (200 with it); a job already running or
                            finished: 409
    GET    /v1/jobs         the tenant's recent jobs, newest first, without results:
                            ?status=queued|running|succeeded|failed|cancelled,
                            ?webhook=pending|delivered|dead, ?limit=1..200 (50),
                            ?before=<cursor> (from the previous page's `next`)

A job of another tenant, an id that is not a job id and an expired job are all the same
404: the answer never says that an id exists elsewhere. Polling is not rate limited (a
poll costs one store read); the job was charged when it was submitted.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.auth.service import AuthService
from gateway.config.runtime import ConfigHolder
from gateway.errors import BadRequest, Conflict, NotFound
from gateway.jobs.records import JOB_ID, JOBS_PATH, job_view
from gateway.pipeline.authenticate import authenticate
from gateway.stores.jobs import FINISHED, STATUSES, WEBHOOK_STATES, JobStore, micros

NO_JOB = "no job {job_id}"
BAD_QUERY = "{name} must be one of: {allowed}"
BAD_LIMIT = "limit must be a whole number from 1 to {most}"
BAD_CURSOR = "before must be the cursor of a previous page's next link"
DEFAULT_LIMIT, MOST = 50, 200
SCAN_ROUNDS = 10  # pages of the index read to fill one filtered page


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers=headers,
                    media_type="application/json")


class JobsApi:
    """The handlers; `gateway.app` mounts them as gateway endpoints."""

    def __init__(self, holder: ConfigHolder, auth: AuthService, store: JobStore,
                 result_ttl: float = 86_400.0):
        self.holder = holder
        self.auth = auth
        self.store = store
        self.cancel_ttl = result_ttl  # how long a cancelled job stays visible

    async def _tenant(self, request: Request) -> str:
        principal = await authenticate(self.auth, self.holder.current,
                                       request.scope["headers"])
        return principal.tenant_id

    async def one(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        job_id = request.path_params["id"]
        job = await self.store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None or job.tenant != tenant:
            raise NotFound(NO_JOB.format(job_id=job_id))
        if request.method == "DELETE":
            route = self.holder.current.routes.get(job.route)
            ttl = route.spec.async_.result_ttl if route and route.spec.async_ \
                else self.cancel_ttl
            outcome = await self.store.cancel(tenant, job_id, ttl)
            if outcome == "":
                raise NotFound(NO_JOB.format(job_id=job_id))
            if outcome != "cancelled":
                raise Conflict(Conflict.NOT_QUEUED.format(job_id=job_id, status=outcome))
            job = await self.store.get(job_id) or job
        headers = {} if job.status in FINISHED else {"Retry-After": "1"}
        return _json(job_view(job), headers=headers)

    async def listing(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        query = request.query_params
        status = query.get("status")
        if status is not None and status not in STATUSES:
            raise BadRequest(BAD_QUERY.format(name="status", allowed=", ".join(STATUSES)))
        webhook = query.get("webhook")
        if webhook is not None and webhook not in WEBHOOK_STATES:
            raise BadRequest(BAD_QUERY.format(name="webhook",
                                              allowed=", ".join(WEBHOOK_STATES)))
        limit_text = query.get("limit", str(DEFAULT_LIMIT))
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MOST:
            raise BadRequest(BAD_LIMIT.format(most=MOST))
        limit = int(limit_text)
        before = None
        if "before" in query:
            if not query["before"].isdigit():
                raise BadRequest(BAD_CURSOR)
            before = int(query["before"])
        found, cursor, exhausted = [], before, False
        for _ in range(SCAN_ROUNDS):  # a filter may skip most of a page: read on
            page = await self.store.recent(tenant, cursor, limit)
            for job in page:
                if (status is None or job.status == status) and \
                        (webhook is None or job.webhook == webhook):
                    found.append(job)
            if len(page) < limit:
                exhausted = True
                break
            cursor = micros(page[-1].created)
            if len(found) >= limit:
                break
        found = found[:limit]
        body: dict[str, object] = {"jobs": [job_view(j, full=False) for j in found]}
        last = micros(found[-1].created) if len(found) == limit else cursor
        if not exhausted and last is not None:
            params = [f"before={last}", f"limit={limit}"]
            params += [f"status={status}"] if status else []
            params += [f"webhook={webhook}"] if webhook else []
            body["next"] = f"{JOBS_PATH}?{'&'.join(params)}"
        else:
            body["next"] = None
        return _json(body, headers={"Cache-Control": "no-store"})
