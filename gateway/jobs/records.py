"""What a job carries: the request to replay, the outcome, the id, and the API's view.

    JobRequest   the submitted request, enough to replay it upstream as the sync call
                 would have gone (the client's headers minus its credentials)
    Outcome      the upstream's answer (status, headers, body) or the problem the gateway
                 would have answered with (502, 503, 504, ...)
    job_view     the JSON of GET /v1/jobs/{id}

The stores keep both as opaque bytes (orjson; bodies base64 inside), so this module is
the only one that knows their shape; `FORMAT` is in each, and bumping it is how a change
of shape is recognised by workers of another release.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.errors import GatewayError, render_problem
from gateway.stores.jobs import Job

FORMAT = 1
JOB_ID_PREFIX = "job_"
JOB_ID = re.compile(r"job_[A-Za-z0-9_-]{22}\Z")  # 16 random bytes, base64url
JOBS_PATH = "/v1/jobs"
# Not kept with a job: the client's credentials, and the headers that asked for the job.
NOT_STORED = frozenset({b"authorization", b"x-api-key", b"cookie", b"prefer",
                        b"callback-url", b"idempotency-key"})


def new_job_id() -> str:
    """128 random bits: an id that cannot be guessed (the tenant check is behind it)."""
    return JOB_ID_PREFIX + secrets.token_urlsafe(16)


@dataclass(slots=True)
class JobRequest:
    """The submitted request, as the worker replays it."""

    method: str
    path: str
    query: str
    params: dict[str, str]
    headers: list[tuple[str, str]]
    client_ip: str
    request_id: str
    credential: str
    kind: str
    scopes: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        return orjson.dumps({"v": FORMAT, "m": self.method, "p": self.path, "q": self.query,
                             "pp": self.params, "h": self.headers, "ip": self.client_ip,
                             "rid": self.request_id, "cred": self.credential,
                             "kind": self.kind, "scopes": self.scopes})

    @classmethod
    def decode(cls, raw: bytes) -> JobRequest:
        d = orjson.loads(raw)
        if d.get("v") != FORMAT:
            raise ValueError(f"job request format {d.get('v')!r}")
        return cls(d["m"], d["p"], d["q"], d["pp"], [(h[0], h[1]) for h in d["h"]],
                   d["ip"], d["rid"], d["cred"], d["kind"], d["scopes"])


def stored_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers
            if k not in NOT_STORED]


@dataclass(slots=True)
class Outcome:
    """An upstream answer, or a problem (exactly one of the two)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    problem: dict[str, Any] | None = None

    def encode(self) -> bytes:
        if self.problem is not None:
            return orjson.dumps({"v": FORMAT, "problem": self.problem})
        return orjson.dumps({"v": FORMAT, "s": self.status, "h": self.headers,
                             "b": base64.b64encode(self.body).decode()})

    @classmethod
    def decode(cls, raw: bytes) -> Outcome | None:
        if not raw:
            return None
        d = orjson.loads(raw)
        if "problem" in d:
            return cls(int(d["problem"]["status"]), problem=d["problem"])
        return cls(int(d["s"]), [(h[0], h[1]) for h in d["h"]],
                   base64.b64decode(d["b"]))

    @classmethod
    def of_error(cls, exc: BaseException, request_id: str) -> Outcome:
        """The problem a synchronous call would have answered with."""
        status, _, body = render_problem(exc, request_id)
        problem = orjson.loads(body)
        if isinstance(exc, GatewayError) and "Retry-After" in exc.headers:
            problem["retry_after"] = int(exc.headers["Retry-After"])
        return cls(status, problem=problem)


def _when(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _result(outcome: Outcome) -> dict[str, Any]:
    headers = {k: v for k, v in outcome.headers}
    out: dict[str, Any] = {"status": outcome.status, "headers": headers}
    content_type = headers.get("content-type", "")
    if "json" in content_type:
        try:
            out["body"] = orjson.loads(outcome.body)
            return out
        except orjson.JSONDecodeError:
            pass
    if content_type.startswith("text/"):
        try:
            out["text"] = outcome.body.decode()
            return out
        except UnicodeDecodeError:
            pass
    out["body_base64"] = base64.b64encode(outcome.body).decode()
    return out


def job_link(job_id: str) -> str:
    return f"{JOBS_PATH}/{job_id}"


def job_view(job: Job, full: bool = True) -> dict[str, Any]:
    """GET /v1/jobs/{id}'s body; `full=False` leaves the result out (the listing)."""
    view: dict[str, Any] = {
        "id": job.id, "status": job.status, "route": job.route,
        "created": _when(job.created), "started": _when(job.started),
        "finished": _when(job.finished), "attempts": job.attempts,
        "links": {"self": job_link(job.id)},
    }
    outcome = Outcome.decode(job.outcome) if full else None
    if outcome is not None:
        if outcome.problem is not None:
            view["problem"] = outcome.problem
        else:
            view["result"] = _result(outcome)
    if job.callback:
        view["webhook"] = {"url": job.callback, "state": job.webhook or "waiting",
                           "attempts": job.webhook_attempts,
                           "last_error": job.webhook_error or None}
    return view
