"""Authentication: who is calling? An API key or a JWT becomes `ctx.principal`.

Credentials come in `Authorization: Bearer <key or JWT>` or `X-API-Key: <key>`; a
request carrying different credentials in both is refused with 400 rather than one
silently winning (the same credential in both is fine). The gateway's keys start with
`gw_`; anything shaped `xxx.yyy.zzz` is taken for a JWT. A public route (`public: true`
in routes.yaml) skips this step and has no principal.

Every refusal is a 401 with `WWW-Authenticate: Bearer realm="gateway"` and, when
credentials were sent, `error="invalid_token"` (RFC 6750 §3.1: no error code when the
request carried none). A tenant that is unknown or disabled in policies/tenants.yaml is
refused the same way, so a disabled tenant's keys and tokens stop at the next reload.
"""

from __future__ import annotations

from gateway.auth.api_keys import KEY_PREFIX
from gateway.auth.service import AuthService
from gateway.config.runtime import CompiledRoute, RuntimeConfig
from gateway.context import Principal, RequestContext
from gateway.errors import BadRequest, Unauthenticated
from gateway.logging import bind_request_fields
from gateway.pipeline import Policy
from gateway.proxy_response import ProxyResponse

NO_CREDENTIALS = "send an API key or access token: Authorization: Bearer <credential>"
MALFORMED = "the credential is neither a gateway API key nor a JWT"
UNKNOWN_TENANT = "the credential's tenant is unknown or disabled"
TWO_CREDENTIALS = "Authorization and X-API-Key carry different credentials: send one"


def _first(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k == name:
            return v
    return None


def presented_credential(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The bearer credential of a request's (raw, lower-case) headers, if any;
    BadRequest if two differ."""
    bearer = None
    auth = _first(headers, b"authorization")
    if auth is not None:
        scheme, _, value = auth.partition(b" ")
        if scheme.lower() == b"bearer" and value.strip():
            bearer = value.strip()
    key = _first(headers, b"x-api-key")
    if key is not None and key.strip():
        if bearer is not None and bearer != key.strip():
            raise BadRequest(TWO_CREDENTIALS)
        bearer = key.strip()
    return bearer.decode("latin-1") if bearer is not None else None


class AuthenticatePolicy(Policy):
    """First in the pipeline: sets `ctx.principal` or ends the request with a 401."""

    name = "authenticate"

    def __init__(self, auth: AuthService):
        self.auth = auth

    def applies_to(self, route: CompiledRoute) -> bool:
        return not route.public

    async def on_request(self, ctx: RequestContext) -> ProxyResponse | None:
        if ctx.route.public:
            return None
        ctx.principal = await authenticate(self.auth, ctx.config, ctx.headers)
        return None


async def authenticate(auth: AuthService, config: RuntimeConfig,
                       headers: list[tuple[bytes, bytes]]) -> Principal:
    """The principal of a request's headers, or Unauthenticated (also for the gateway's
    own authenticated endpoints, the job API)."""
    credential = presented_credential(headers)
    if credential is None:
        raise Unauthenticated(NO_CREDENTIALS, error="")
    principal: Principal
    if credential.startswith(KEY_PREFIX):
        principal = await auth.verify_api_key(credential)
    elif credential.count(".") == 2:
        principal = await auth.verify_token(credential)
    else:
        raise Unauthenticated(MALFORMED)
    tenant = config.tenants.get(principal.tenant_id)
    if tenant is None or not tenant.enabled:
        raise Unauthenticated(UNKNOWN_TENANT)
    bind_request_fields(tenant=principal.tenant_id, credential=principal.credential_id)
    return principal
