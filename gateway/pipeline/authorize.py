"""Authorization: may this principal call this route? Otherwise a 403 problem.

Two checks, both against the config snapshot of the request:
* the tenant's `routes` in policies/tenants.yaml names the route (or is `"*"`);
* the principal holds every scope the route names in routes.yaml. A credential holding
  `"*"` (an API key created without --scopes) holds every scope its tenant may use.

A missing scope is answered with RFC 6750's `error="insufficient_scope"` and the scopes
the route needs, so a client can ask for a better token.
"""

from __future__ import annotations

from gateway.auth.api_keys import ALL_SCOPES
from gateway.config.runtime import CompiledRoute
from gateway.context import RequestContext
from gateway.errors import Forbidden, InsufficientScope
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse

ROUTE_NOT_ALLOWED = "tenant {tenant!r} may not call route {route!r}"
SCOPE_MISSING = "route {route!r} needs scope(s): {scopes}"


class AuthorizePolicy(Policy):
    """Right after authentication: tenant route list, then route scopes."""

    name = "authorize"

    def applies_to(self, route: CompiledRoute) -> bool:
        return not route.public

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        principal, route = ctx.principal, ctx.route
        if route.public or principal is None:
            return None  # public route; authentication already refused the rest
        tenant = ctx.config.tenants[principal.tenant_id]
        if "*" not in tenant.routes and route.name not in tenant.routes:
            raise Forbidden(ROUTE_NOT_ALLOWED.format(tenant=principal.tenant_id,
                                                     route=route.name))
        if route.scopes and ALL_SCOPES not in principal.scopes \
                and not route.scopes <= principal.scopes:
            needed = " ".join(sorted(route.scopes))
            raise InsufficientScope(SCOPE_MISSING.format(route=route.name, scopes=needed),
                                    needed)
        return None
