"""RFC 9457 problem documents: the only shape an error leaves a service in.

Raise `ProblemError` anywhere on the request path; the server's exception handler turns it
into an `application/problem+json` answer carrying the request id. Never put a stack trace
or the offending text itself in `detail`.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "/problems/"


class ProblemError(Exception):
    """A client-visible failure with its HTTP status and a stable `type` slug."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.type = PROBLEM_BASE + slug
        self.title = title
        self.detail = detail


def problem_response(
    status: int, type_: str, title: str, detail: str, request_id: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Serialize one problem document into a response."""
    body = orjson.dumps(
        {"type": type_, "title": title, "status": status, "detail": detail,
         "request_id": request_id}
    )
    return Response(body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=headers)


def from_problem(exc: ProblemError, request_id: str) -> Response:
    """The response for a raised `ProblemError`."""
    return problem_response(exc.status, exc.type, exc.title, exc.detail, request_id)
