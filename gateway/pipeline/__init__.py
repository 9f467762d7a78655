"""The policy pipeline: small classes with two hooks over one `RequestContext`.

    on_request(ctx)            -> ProxyResponse | None   runs in list order
    on_response(ctx, response) -> None                   runs in reverse, for each policy
                                                         whose on_request ran
Raising a `GatewayError` ends the request with that error (401, 403, 429, ...).
Returning a response ends it with that answer (cache hit, idempotent replay) and the
upstream is not called. The order is one literal list, built in `gateway.app`.

`PolicyPlan` keeps, per route of one config, only the policies that can act on it
(`applies_to`): a public route skips authentication and what depends on it, a route
without `cache:` skips the cache. Deciding once per route and config generation saves
each request the awaits of hooks that would return at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gateway.config.runtime import CompiledRoute, RuntimeConfig
    from gateway.context import RequestContext
    from gateway.proxy_response import ProxyResponse


class Policy:
    """Base class: override one or both hooks. Hold no per-request state on `self`."""

    name = "policy"
    has_response_hook: ClassVar[bool] = False  # set for subclasses that override it

    def __init_subclass__(cls, **kw: object) -> None:
        super().__init_subclass__(**kw)
        cls.has_response_hook = cls.on_response is not Policy.on_response

    def applies_to(self, route: CompiledRoute) -> bool:
        """Whether this policy can act on `route` at all (asked once per config)."""
        return True

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        return None

    async def on_response(self, ctx: RequestContext, response: ProxyResponse) -> None:
        return None


class PolicyPlan:
    """The policies of each route of the current config, in pipeline order."""

    def __init__(self, policies: Sequence[Policy]):
        self.policies = list(policies)
        self._config: RuntimeConfig | None = None
        self._by_route: dict[int, list[Policy]] = {}

    def for_route(self, config: RuntimeConfig, route: CompiledRoute) -> list[Policy]:
        if config is not self._config:  # a reload: decide again (this holds the config,
            self._config, self._by_route = config, {}  # so ids of its routes stay unique)
        plan = self._by_route.get(id(route))
        if plan is None:
            plan = self._by_route[id(route)] = [
                p for p in self.policies if p.applies_to(route)]
        return plan


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
        if policy.has_response_hook:
            await policy.on_response(ctx, response)
    return response
