"""The admin API under /admin/: the operator's view and controls, with its own credential.

    GET    /admin/routes            routes, their upstream groups and each target's health
    GET    /admin/tenants           tenants, their limits and current usage against them
    GET    /admin/keys[?tenant=]    API keys: ids and state, never secrets
    POST   /admin/keys              issue a key {tenant, name?, scopes?, expires_in?}
    DELETE /admin/keys/{id}         revoke a key at once
    POST   /admin/config/check      load routes.yaml and policies/ now: swap, or the problems

Every call needs `Authorization: Bearer <GATEWAY_ADMIN_TOKEN>` (or the token in
GATEWAY_ADMIN_TOKEN_FILE), compared in constant time with the token read at start-up; a
tenant's key or token is never an admin credential (401 like any wrong token). Without
an admin token configured the API is off: every /admin/ path answers 404. The paths are
reserved (gateway.config.reserved): no route can take them. `gateway admin ...`
(gateway/admin_cli.py) is the same API from a terminal. docs/admin.md has the details.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin_views import route_views, tenant_views
from gateway.auth.api_keys import ALL_SCOPES, issue_key
from gateway.auth.service import AuthService
from gateway.config import load_config
from gateway.config.reload import ConfigReloader
from gateway.config.runtime import ConfigHolder
from gateway.endpoints import Endpoint
from gateway.errors import BadRequest, ConfigError, NotFound, ServiceUnavailable, Unauthenticated
from gateway.settings import Settings
from gateway.stores import Stores
from gateway.upstream_health import TargetHealth

ADMIN_PREFIX = "/admin/"
ADMIN_OFF = "the admin API is off: set GATEWAY_ADMIN_TOKEN or GATEWAY_ADMIN_TOKEN_FILE"
BAD_ADMIN_TOKEN = "the admin API needs Authorization: Bearer <admin token>"
UNKNOWN_TENANT = "unknown tenant {tenant!r}"
UNKNOWN_SCOPE = "unknown scope {scope!r}"
NO_KEY = "no key with id {key_id!r}"
BAD_BODY = "the body must be a JSON object: {fields}"

Handler = Callable[[Request], Awaitable[Response]]


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_INDENT_2), status,
                    media_type="application/json")


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AdminApi:
    """The /admin/ endpoints over the services `create_app` built."""

    def __init__(self, settings: Settings, token: str | None, holder: ConfigHolder,
                 reloader: ConfigReloader, health: TargetHealth, stores: Stores,
                 auth: AuthService):
        self.settings, self.holder, self.reloader = settings, holder, reloader
        self.health, self.stores, self.auth = health, stores, auth
        self._digest = _digest(token) if token else None

    def endpoints(self) -> list[Endpoint]:
        guarded = self._guarded
        return [
            Endpoint(ADMIN_PREFIX + "routes", ["GET"], guarded(self.routes)),
            Endpoint(ADMIN_PREFIX + "tenants", ["GET"], guarded(self.tenants)),
            Endpoint(ADMIN_PREFIX + "keys", ["GET", "POST"], guarded(self.keys)),
            Endpoint(ADMIN_PREFIX + "keys/{key_id}", ["DELETE"], guarded(self.revoke)),
            Endpoint(ADMIN_PREFIX + "config/check", ["POST"], guarded(self.check)),
        ]

    def _guarded(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if self._digest is None:
                raise NotFound(ADMIN_OFF)
            scheme, _, presented = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                    _digest(presented.strip()), self._digest):
                raise Unauthenticated(BAD_ADMIN_TOKEN)
            return await handler(request)
        return guarded

    # -- views ---------------------------------------------------------------------------

    async def routes(self, request: Request) -> Response:
        config = self.holder.current
        return _json({"generation": self.holder.generation,
                      "routes": route_views(config, self.health)})

    async def tenants(self, request: Request) -> Response:
        return _json({"tenants": await tenant_views(self.holder.current, self.stores)})

    # -- keys ----------------------------------------------------------------------------

    def _store(self) -> Any:
        if self.auth.store is None:
            raise ServiceUnavailable("the credential store is not open yet")
        return self.auth.store

    async def keys(self, request: Request) -> Response:
        if request.method == "POST":
            return await self._create_key(request)
        tenant = request.query_params.get("tenant")
        now = time.time()
        return _json({"keys": [
            {"id": r.key_id, "tenant": r.tenant_id, "name": r.name, "scopes": list(r.scopes),
             "created": r.created, "expires": r.expires, "revoked": r.revoked,
             "state": r.state(now)}
            for r in self._store().list_keys() if tenant in (None, r.tenant_id)]})

    async def _create_key(self, request: Request) -> Response:
        fields = "tenant (string), name, scopes (list of strings), expires_in (seconds)"
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            raise BadRequest(BAD_BODY.format(fields=fields)) from None
        if not isinstance(body, dict) or not isinstance(body.get("tenant"), str):
            raise BadRequest(BAD_BODY.format(fields=fields))
        scopes, expires_in = body.get("scopes"), body.get("expires_in")
        if (scopes is not None and not (isinstance(scopes, list) and scopes and all(
                isinstance(s, str) for s in scopes))) or not isinstance(
                body.get("name", ""), str) or (expires_in is not None and not (
                isinstance(expires_in, int | float) and expires_in > 0)):
            raise BadRequest(BAD_BODY.format(fields=fields))
        config = self.holder.current
        if body["tenant"] not in config.tenants:
            raise BadRequest(UNKNOWN_TENANT.format(tenant=body["tenant"]))
        known = {s for r in config.routes.values() for s in r.scopes}
        for scope in scopes or ():
            if scope != ALL_SCOPES and scope not in known:
                raise BadRequest(UNKNOWN_SCOPE.format(scope=scope))
        key, record = issue_key(body["tenant"], name=body.get("name", ""),
                                scopes=tuple(scopes) if scopes else None,
                                expires_in=expires_in)
        await self._store().put_key(record)
        return _json({"key": key, "id": record.key_id, "tenant": record.tenant_id,
                      "scopes": list(record.scopes), "expires": record.expires}, 201)

    async def revoke(self, request: Request) -> Response:
        from dataclasses import replace

        key_id = request.path_params["key_id"]
        store = self._store()
        record = store.key(key_id)
        if record is None:
            raise NotFound(NO_KEY.format(key_id=key_id))
        revoked = replace(record, revoked=record.revoked or time.time())
        await store.put_key(revoked)
        return _json({"id": key_id, "revoked": revoked.revoked, "state": "revoked"})

    # -- config --------------------------------------------------------------------------

    async def check(self, request: Request) -> Response:
        s = self.settings
        try:
            config = await asyncio.to_thread(load_config, s.routes_file, s.policies_dir)
        except ConfigError as exc:
            return _json({"ok": False, "generation": self.holder.generation, "problems": [
                {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
                for p in exc.problems]}, 422)
        self.reloader.adopt(config)
        return _json({"ok": True, "generation": self.holder.generation,
                      "routes": len(config.routes)})
