"""The job API (docs/jobs.md) as OpenAPI: the /v1/jobs path items, the Job schemas, and
what an `async:` route adds to its operations (Prefer, Callback-URL, the 202)."""

from __future__ import annotations

from gateway.jobs.records import JOBS_PATH
from gateway.openapi.components import JSON, Obj, header_ref, response_ref, schema_ref
from gateway.stores.jobs import STATUSES, WEBHOOK_STATES

SECURITY: list[Obj] = [{"apiKeyBearer": []}, {"apiKeyHeader": []}, {"oauth2": []}]
PREFER_PARAM: Obj = {
    "name": "Prefer", "in": "header", "required": False,
    "description": "`respond-async` (RFC 7240): answer 202 with a job instead of waiting; "
                   "other preferences are ignored, as the RFC says",
    "schema": {"type": "string", "examples": ["respond-async"]},
}
IDEMPOTENCY_PARAM: Obj = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "The same key and request again: the first answer or job, without a "
                   "second upstream call (another request under the key: 422; the first "
                   "still running: 409)",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": "^[\\x20-\\x7e]+$"},
}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def job_schemas() -> Obj:
    links = {"type": "object", "required": ["self"],
             "properties": {"self": {"type": "string"}}}
    summary: Obj = {
        "type": "object", "required": ["id", "status", "route", "created", "attempts", "links"],
        "properties": {
            "id": {"type": "string", "pattern": "^job_[A-Za-z0-9_-]{22}$"},
            "status": {"enum": list(STATUSES)},
            "route": {"type": "string"},
            "created": _TIME, "started": _TIME, "finished": _TIME,
            "attempts": {"type": "integer", "minimum": 0},
            "links": links,
            "webhook": {"type": "object", "properties": {
                "url": {"type": "string"}, "state": {"enum": ["waiting", *WEBHOOK_STATES]},
                "attempts": {"type": "integer"},
                "last_error": {"type": ["string", "null"]}}},
        },
    }
    job: Obj = {**summary, "properties": {
        **summary["properties"],
        "result": {"type": "object", "required": ["status", "headers"],
                   "description": "The upstream's answer: `body` when JSON, `text` when "
                                  "text, else `body_base64`",
                   "properties": {"status": {"type": "integer"},
                                  "headers": {"type": "object"}, "body": {},
                                  "text": {"type": "string"},
                                  "body_base64": {"type": "string"}}},
        "problem": schema_ref("Problem"),
    }}
    return {
        "JobSummary": summary,
        "Job": job,
        "JobAccepted": {"type": "object", "required": ["id", "status", "links"],
                        "properties": {"id": summary["properties"]["id"],
                                       "status": {"enum": list(STATUSES)}, "links": links}},
        "JobList": {"type": "object", "required": ["jobs", "next"], "properties": {
            "jobs": {"type": "array", "items": schema_ref("JobSummary")},
            "next": {"type": ["string", "null"],
                     "description": "the next page, or null on the last"}}},
    }


def accepted_response() -> Obj:
    string = {"schema": {"type": "string"}}
    return {"description": "Accepted as a job: poll Location, or await the webhook to the "
                           "request's Callback-URL (docs/jobs.md)",
            "headers": {"X-Request-ID": header_ref("X-Request-ID"), "Location": string,
                        "Retry-After": header_ref("Retry-After"),
                        "Preference-Applied": string},
            "content": {JSON: {"schema": schema_ref("JobAccepted")}}}


def _job_answer(description: str) -> Obj:
    pending = {"description": "While the job is queued or running: seconds before the "
                              "next poll", "required": False,
               "schema": {"type": "integer", "minimum": 1}}
    return {"description": description,
            "headers": {"X-Request-ID": header_ref("X-Request-ID"), "Retry-After": pending},
            "content": {JSON: {"schema": schema_ref("Job")}}}


def job_paths() -> Obj:
    job_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    query = [
        {"name": "status", "in": "query", "required": False,
         "schema": {"enum": list(STATUSES)}},
        {"name": "webhook", "in": "query", "required": False,
         "schema": {"enum": list(WEBHOOK_STATES)}},
        {"name": "limit", "in": "query", "required": False,
         "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
        {"name": "before", "in": "query", "required": False,
         "description": "the cursor of a previous page's `next`",
         "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    ]
    errors = {str(s): response_ref(s) for s in (401, 404)}
    return {
        JOBS_PATH: {"get": {
            "operationId": "jobs_list", "tags": ["jobs"], "security": SECURITY,
            "summary": "The tenant's recent jobs, newest first", "parameters": query,
            "responses": {"200": {"description": "A page of jobs",
                                  "headers": {"X-Request-ID": header_ref("X-Request-ID")},
                                  "content": {JSON: {"schema": schema_ref("JobList")}}},
                          "400": response_ref(400), "401": response_ref(401)}}},
        JOBS_PATH + "/{id}": {
            "get": {"operationId": "job_get", "tags": ["jobs"], "security": SECURITY,
                    "summary": "A job: its state, and its result once finished",
                    "parameters": [job_id],
                    "responses": {"200": _job_answer("The job (Retry-After while queued "
                                                     "or running)"), **errors}},
            "delete": {"operationId": "job_cancel", "tags": ["jobs"], "security": SECURITY,
                       "summary": "Cancel a queued job", "parameters": [job_id],
                       "responses": {"200": _job_answer("The cancelled job"), **errors,
                                     "409": response_ref(409)}},
        },
    }
