"""What the upstream client decides, as pure functions over the route and the failure.

Which target (weighted, skipping unusable ones), whether a failed attempt may be sent
again or fall back to the next group, how long to back off, and which headers cross
the gateway in each direction. No I/O here: tested without servers (tests/test_upstream.py).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gateway.config.runtime import CompiledGroup, CompiledTarget, RetryPlan
from gateway.context import RequestContext
from gateway.errors import GatewayError

HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"proxy-connection",
})
# Never forwarded: hop-by-hop, the client's credentials, and what the gateway sets itself.
_REQUEST_DROP = HOP_BY_HOP | {
    b"host", b"content-length", b"authorization", b"x-api-key", b"cookie", b"x-tenant-id",
    b"x-request-id", b"traceparent", b"x-forwarded-for", b"expect",
}
# The gateway's server adds its own Date; Server would name the backend's software;
# the request id is the gateway's to echo (once).
_RESPONSE_DROP = HOP_BY_HOP | {b"content-length", b"date", b"server", b"x-request-id"}


def choose_target(
    group: CompiledGroup, usable: Callable[[str], bool], r: float, avoid: str | None = None
) -> CompiledTarget | None:
    """Weighted pick among usable targets; `r` in [0, 1). Avoids `avoid` if others remain."""
    targets = group.targets
    if len(targets) == 1:
        t = targets[0]
        return t if usable(t.url) else None
    cands = [t for t in targets if t.weight and usable(t.url)]
    if avoid is not None and len(cands) > 1:
        cands = [t for t in cands if t.url != avoid]
    if not cands:
        return None
    if len(cands) == len(targets):
        return targets[bisect.bisect_right(group.cumulative, r * group.cumulative[-1])]
    x = r * sum(t.weight for t in cands)
    for t in cands:
        x -= t.weight
        if x < 0:
            return t
    return cands[-1]


@dataclass(frozen=True, slots=True)
class Failure:
    """Why an attempt failed: connect (never reached the upstream), timeout, reset, status."""

    kind: str
    error: GatewayError
    status: int = 0


def may_retry(plan: RetryPlan, method: str, attempt: int, failure: Failure) -> bool:
    """Retry only within budget; any method when the request never left, else allowed ones."""
    if attempt >= plan.attempts or failure.kind == "unavailable":
        return False
    if failure.kind == "connect":
        return True
    if method not in plan.methods:
        return False
    return failure.kind != "status" or failure.status in plan.on_status


def may_fall_back(plan: RetryPlan, method: str, failure: Failure) -> bool:
    """Move on to the next group when it is safe to send the request again."""
    return failure.kind in ("connect", "unavailable") or method in plan.methods


MAX_PARK = 600.0  # seconds: a provider's Retry-After beyond this is taken as this


def retry_after_seconds(value: bytes | None, default: float = 1.0) -> float:
    """An upstream's Retry-After (seconds, or an HTTP date) as seconds, within
    [0, MAX_PARK]; `default` when absent or unreadable."""
    if not value:
        return default
    text = value.decode("latin-1").strip()
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            seconds = parsedate_to_datetime(text).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    if seconds != seconds:  # NaN
        return default
    return min(MAX_PARK, max(0.0, seconds))


def backoff_delay(plan: RetryPlan, attempt: int, r: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""
    return r * min(plan.max_backoff, plan.backoff * 2.0 ** attempt)


def forward_headers(ctx: RequestContext, traceparent: bytes) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop and credentials, plus the gateway's own."""
    drop = _REQUEST_DROP
    # Every Connection field counts, not only the first (RFC 9110 §5.3, §7.6.1).
    connection = [v for k, v in ctx.headers if k == b"connection"]
    if connection:
        drop = drop | {t.strip().lower() for v in connection for t in v.split(b",")}
    out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in ctx.headers if k not in drop]
    xff = ctx.header(b"x-forwarded-for")
    xff_value = f"{xff.decode('latin-1')}, {ctx.client_ip}" if xff else ctx.client_ip
    out.append(("X-Request-ID", ctx.request_id))
    out.append(("X-Forwarded-For", xff_value))
    out.append(("traceparent", traceparent.decode()))
    if ctx.principal is not None:
        out.append(("X-Tenant-ID", ctx.principal.tenant_id))
    return out


def with_target_headers(headers: list[tuple[str, str]], target: CompiledTarget
                        ) -> list[tuple[str, str]]:
    """`headers` with the target's configured ones (routes.yaml `headers:`), which replace
    a client's header of the same name."""
    names = target.header_names
    out = [h for h in headers if h[0].lower() not in names]
    out += [(h.name, h.value) for h in target.headers]
    return out


def answer_headers(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The upstream's response headers the client may see, as ASGI wants them. Names
    come lower-cased from the HTTP client (`gateway.http1`), as HTTP/2 has them."""
    out = []
    named: set[bytes] = set()  # what the upstream's Connection fields name: hop-by-hop too
    for k, v in raw:
        if k not in _RESPONSE_DROP:
            out.append((k, v))
        elif k == b"connection":
            named.update(t.strip().lower() for t in v.split(b","))
    if named:
        out = [h for h in out if h[0] not in named]
    return out
