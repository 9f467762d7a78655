"""The OAuth2 endpoints: token (client credentials), JWKS and server metadata.

    POST /oauth/token                          RFC 6749 §4.4, client_secret_basic or _post
    GET  /.well-known/jwks.json                RFC 7517, our public signing keys with kid
    GET  /.well-known/oauth-authorization-server   RFC 8414

The token endpoint is authlib's generic `AuthorizationServer` with its
`ClientCredentialsGrant` (authlib ships server integrations only for Flask and Django):
we supply the four framework hooks. authlib calls them synchronously, which is why
client lookups read the in-memory credential snapshot.

Error answers follow RFC 6749 §5.2 (`application/json` with `error`,
`error_description`), which every OAuth client library parses, and also carry the RFC
9457 members (`type`, `title`, `status`, `detail`, `request_id`) of every other gateway
error; every error names its case in `error_description`. `invalid_client` is always
401 with a `WWW-Authenticate: Basic realm="gateway"` challenge, however the client tried
to authenticate (RFC 9110 §15.5.2: every 401 carries a challenge). Which credentials a
request presented is decided in `gateway.auth.client_auth`, before authlib runs.

authlib refuses to serve the token endpoint over plain http unless the host is loopback;
the URL checked is the configured issuer, the address clients are told to use, so a
deployment behind a TLS terminator sets `GATEWAY_TOKEN_ISSUER=https://...`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
import structlog
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationServer,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.errors import (  # type: ignore[import-untyped]
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnsupportedGrantTypeError,
)
from authlib.oauth2.rfc6749.grants import (  # type: ignore[import-untyped]
    ClientCredentialsGrant,
)
from authlib.oauth2.rfc6749.requests import (  # type: ignore[import-untyped]
    BasicOAuth2Payload,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth.client_auth import AUTH_FAILED, ClientCredentials, presented_client
from gateway.auth.oauth_clients import AUTH_METHODS, GRANT_TYPE, OAuthClientRecord
from gateway.auth.service import AuthService
from gateway.config.runtime import ConfigHolder
from gateway.errors import PROBLEM_BASE, PayloadTooLarge

log = structlog.get_logger("gateway.auth")

MAX_TOKEN_REQUEST = 8 * 1024
_DESCRIBABLE = re.compile(r"[\x20\x21\x23-\x26\x28-\x5b\x5d-\x7e]{1,64}")
TOKEN_PATH = "/oauth/token"
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"

NO_GRANT_TYPE = "Missing 'grant_type' parameter: send grant_type=client_credentials."
UNSUPPORTED_GRANT = "Only grant_type=client_credentials is supported."
# The description of an error authlib raised without one (RFC 6749 §5.2 wants it).
_DESCRIPTIONS = {"unsupported_grant_type": UNSUPPORTED_GRANT, "invalid_client": AUTH_FAILED,
                 "invalid_scope": "The requested scope exceeds the client's scopes."}


class _FormRequest(OAuth2Request):  # type: ignore[misc]
    """A token request already read and parsed from Starlette."""

    def __init__(self, uri: str, headers: Any, form: dict[str, str],
                 credentials: ClientCredentials, request_id: str):
        super().__init__("POST", uri, headers=headers)
        self.payload = BasicOAuth2Payload(form)
        self._form = form
        self.credentials = credentials
        self.request_id = request_id

    @property
    def form(self) -> dict[str, str]:
        return self._form

    @property
    def args(self) -> dict[str, str]:
        return {}


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    def validate_requested_scope(self) -> None:
        # Narrowed to the client's own scopes; asking for more is invalid_scope.
        requested = (self.request.payload.scope or "").split()
        if not set(requested) <= set(self.request.client.scopes):
            raise InvalidScopeError()


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's generic server with the gateway's client store and token signer."""

    def __init__(self, auth: AuthService, tenant_active: Callable[[str], bool]):
        super().__init__()
        self.auth = auth
        self.tenant_active = tenant_active
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._generate_token)
        for method in AUTH_METHODS:  # credentials parsed once, by gateway.auth.client_auth
            self.register_client_auth_method(method, self._authenticate(method))

    def _authenticate(self, method: str) -> Callable[[Any, _FormRequest], Any]:
        def authenticate(query_client: Any, request: _FormRequest) -> OAuthClientRecord | None:
            presented = request.credentials
            if presented.method != method:
                return None
            client = self.query_client(presented.client_id)
            if client is None or not client.check_client_secret(presented.client_secret):
                raise InvalidClientError(status_code=401, description=AUTH_FAILED)
            return client

        return authenticate

    def query_client(self, client_id: str) -> OAuthClientRecord | None:
        client = self.auth.client(client_id)
        if client is None or not self.tenant_active(client.tenant_id):
            return None
        return client

    def _generate_token(self, grant_type: str, client: OAuthClientRecord, user: Any = None,
                        scope: str | None = None, expires_in: int | None = None,
                        include_refresh_token: bool = False) -> dict[str, Any]:
        scopes = scope.split() if scope else list(client.scopes)
        return self.auth.issuer.issue(client.client_id, client.tenant_id, scopes)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # Tokens are self-contained JWTs: nothing to store. Log who, never the token.
        log.info("token_issued", client_id=request.client.client_id,
                 tenant=request.client.tenant_id, scope=token["scope"])

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]
                        ) -> Response:
        return Response(orjson.dumps(body), status, dict(headers))

    def handle_error_response(self, request: _FormRequest, error: OAuth2Error) -> Response:
        return self.error_response(error, request.request_id)

    def error_response(self, error: OAuth2Error, request_id: str) -> Response:
        status, body, headers = error()
        headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
        if isinstance(error, InvalidClientError):
            status = 401
            headers.append(("WWW-Authenticate", 'Basic realm="gateway"'))
        if not body.get("error_description"):
            body["error_description"] = _DESCRIPTIONS.get(body["error"], body["error"])
        detail = body["error_description"]
        body.update(type=PROBLEM_BASE + "oauth-" + body["error"].replace("_", "-"),
                    title=body["error"], status=status, detail=detail, request_id=request_id)
        return Response(orjson.dumps(body), status, dict(headers))


class OAuthEndpoints:
    """The three endpoints' handlers; `create_app` registers them at their paths."""

    def __init__(self, auth: AuthService, holder: ConfigHolder):
        self.auth, self.holder = auth, holder
        self.server = GatewayAuthorizationServer(auth, self._tenant_active)

    def _tenant_active(self, tenant_id: str) -> bool:
        tenant = self.holder.current.tenants.get(tenant_id)
        return tenant is not None and tenant.enabled

    async def token(self, request: Request) -> Response:
        request_id = str(request.scope.get("state", {}).get("request_id", ""))
        try:
            form = await _read_form(request)
            if not form.get("grant_type"):  # empty counts as omitted (RFC 6749 §3.1)
                raise InvalidRequestError(NO_GRANT_TYPE)
            if form["grant_type"] != GRANT_TYPE:
                raise UnsupportedGrantTypeError(form["grant_type"])
            authorization = [v for k, v in request.headers.raw if k == b"authorization"]
            credentials = presented_client(authorization, form)
        except OAuth2Error as error:
            return self.server.error_response(error, request_id)
        # A client created a moment ago may not be in the snapshot yet: re-check first.
        await self.auth.recheck_client(credentials.client_id)
        oauth_request = _FormRequest(self.auth.settings.issuer_url + TOKEN_PATH,
                                     request.headers, form, credentials, request_id)
        response: Response = self.server.create_token_response(oauth_request)
        return response

    async def jwks(self, request: Request) -> Response:
        return JSONResponse(self.auth.signing.jwks(),
                            headers={"Cache-Control": "public, max-age=300"})

    async def metadata(self, request: Request) -> Response:
        issuer = self.auth.settings.issuer_url
        scopes = sorted({s for r in self.holder.current.routes.values() for s in r.scopes})
        return JSONResponse({
            "issuer": issuer,
            "token_endpoint": issuer + TOKEN_PATH,
            "jwks_uri": issuer + JWKS_PATH,
            "grant_types_supported": [GRANT_TYPE],
            "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
            "scopes_supported": scopes,
            # REQUIRED by RFC 8414 and non-empty for authlib's validator; with no
            # authorization endpoint the honest value is the registered type "none".
            "response_types_supported": ["none"],
        }, headers={"Cache-Control": "public, max-age=300"})


async def _read_form(request: Request) -> dict[str, str]:
    """The urlencoded body (RFC 6749 §3.2), bounded; a repeated parameter is refused."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise InvalidRequestError("Send application/x-www-form-urlencoded parameters.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_TOKEN_REQUEST:
            raise PayloadTooLarge(MAX_TOKEN_REQUEST)  # the contract's 413, problem+json
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise InvalidRequestError("The request body is not UTF-8.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # RFC 6749 §5.2 allows only printable ASCII (no '"' or '\\') in descriptions.
            shown = f" '{name}'" if _DESCRIBABLE.fullmatch(name) else ""
            raise InvalidRequestError(f"Repeated{shown} parameter.")
        form[name] = value
    return form
