"""The paths the gateway keeps for its own endpoints, whatever routes.yaml says.

    RESERVED_PATHS      exact paths of gateway endpoints outside the reserved prefixes
    RESERVED_PREFIXES   whole namespaces: /oauth/..., /.well-known/..., /admin/... and
                        /v1/jobs/...

`gateway.endpoints.GatewayDispatch` answers every reserved path itself (the endpoint, a
405 for a method it does not take, or a 404), before any route is looked at; so a route
claiming one could never receive a request. `load_config` refuses such a route
(`shadowed_reserved`), at start-up, on reload and in `gateway check` alike. A broader
route (`prefix: /`, a `{param}` template) is fine: the reserved paths are carved out.

The dispatch refuses an endpoint whose path is not reserved here, so this list, which
`gateway check` reads without building an app, always agrees with the running gateway;
the refusal message names the reserved paths from it too (`RESERVED_LIST`).
"""

from __future__ import annotations

RESERVED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})
# /v1/jobs/...: the job API (docs/jobs.md), its root the listing.
RESERVED_PREFIXES = ("/oauth/", "/.well-known/", "/admin/", "/v1/jobs/")
# With each namespace's own root (/oauth): a path is reserved when it is in RESERVED_EXACT
# or starts with a prefix, two checks the per-request callers make inline.
RESERVED_EXACT = RESERVED_PATHS | {p.rstrip("/") for p in RESERVED_PREFIXES}
# For messages: "/healthz, /metrics, ..., /oauth/..., /.well-known/..."
RESERVED_LIST = ", ".join([*sorted(RESERVED_PATHS), *(p + "..." for p in RESERVED_PREFIXES)])


def is_reserved(path: str) -> bool:
    """Whether `path` belongs to the gateway rather than to any route."""
    return path in RESERVED_EXACT or path.startswith(RESERVED_PREFIXES)


def shadowed_reserved(path: str | None, prefix: str | None) -> str | None:
    """The reserved path a route's match names, or None when it names none.

    An exact path is checked whole; a template by its text before the first `{param}`,
    when that text reaches into a reserved namespace (`/oauth/{x}`); a prefix when a
    reserved path is what it names (`prefix: /oauth` would take /oauth/token, `prefix:
    /metrics` /metrics itself; `prefix: /metrics/` takes only paths below it).
    """
    if path is not None:
        head, brace, _ = path.partition("{")
        if not brace:
            return path if is_reserved(path) else None
        return head if head.startswith(RESERVED_PREFIXES) else None
    if prefix is not None and is_reserved(prefix):
        return prefix
    return None
