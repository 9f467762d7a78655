"""The policy pipeline: small classes with two hooks over one `RequestContext`.

    on_request(ctx)            -> ProxyResponse | None   runs in list order
    on_response(ctx, response) -> None                   runs in reverse, for each policy
                                                         whose on_request ran
Raising a `GatewayError` ends the request with that error (401, 403, 429, ...).
Returning a response ends it with that answer (cache hit, idempotent replay) and the
upstream is not called. The order is one literal list, built in `gateway.app`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.context import RequestContext
    from gateway.proxy_response import ProxyResponse


class Policy:
    """Base class: override one or both hooks. Hold no per-request state on `self`."""

    name = "policy"

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        return None

    async def on_response(self, ctx: RequestContext, response: ProxyResponse) -> None:
        return None


async def run_pipeline(
    policies: Sequence[Policy],
    ctx: RequestContext,
    call_upstream: Callable[[RequestContext], Awaitable[ProxyResponse]],
) -> ProxyResponse:
    """Run the request hooks, the upstream (unless a policy answered), the response hooks."""
    ran = 0
    response = None
    for policy in policies:
        ran += 1
        response = await policy.on_request(ctx)
        if response is not None:
            break
    if response is None:
        response = await call_upstream(ctx)
    for policy in reversed(policies[:ran]):
        await policy.on_response(ctx, response)
    return response
