"""`gateway admin ...`: the admin API (gateway/admin_api.py) from a terminal.

    gateway admin [--url URL] routes
    gateway admin [--url URL] tenants
    gateway admin [--url URL] keys list [--tenant ID]
    gateway admin [--url URL] keys create --tenant ID [--name N] [--scopes a,b] [--expires-in 30d]
    gateway admin [--url URL] keys revoke KEY_ID
    gateway admin [--url URL] check

Talks to a running gateway over HTTP (unlike `gateway keys`, which writes the key store
itself), with the admin token of GATEWAY_ADMIN_TOKEN or GATEWAY_ADMIN_TOKEN_FILE. The
URL defaults to http://GATEWAY_HOST:GATEWAY_PORT. Answers are printed as JSON on stdout;
`keys create` prints the new key alone on stdout (once) and the rest on stderr, as
`gateway keys create` does. A refusal prints the problem's detail and exits 1; `check`
exits 2 when the config has problems, printing each as `file:line: field: message`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from gateway.auth.admin import UsageError, _scopes_arg, key_id_of, parse_duration
from gateway.settings import Settings

NO_TOKEN = "no admin token: set GATEWAY_ADMIN_TOKEN or GATEWAY_ADMIN_TOKEN_FILE"


def _call(settings: Settings, url: str | None, method: str, path: str,
          body: dict[str, Any] | None = None, params: dict[str, str] | None = None
          ) -> httpx.Response:
    token = settings.admin_credential()
    if token is None:
        raise UsageError(NO_TOKEN)
    base = (url or settings.issuer_url).rstrip("/")
    try:
        r = httpx.request(method, base + path, json=body, params=params, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach the gateway at {base}: {type(exc).__name__}") from None
    if r.status_code >= 400 and r.status_code != 422:
        try:
            detail = r.json().get("detail", r.text)
        except ValueError:
            detail = r.text
        raise UsageError(f"{r.status_code}: {detail}")
    return r


def _print(data: Any) -> None:
    print(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def cmd_admin(args: argparse.Namespace, settings: Settings) -> int:
    what, url = args.what, args.url
    if what in ("routes", "tenants"):
        _print(_call(settings, url, "GET", f"/admin/{what}").json())
        return 0
    if what == "check":
        answer = _call(settings, url, "POST", "/admin/config/check").json()
        if answer["ok"]:
            print(f"ok: generation {answer['generation']}, {answer['routes']} routes")
            return 0
        for p in answer["problems"]:
            where = f"{p['file']}:{p['line']}" if p["line"] else p["file"]
            print(f"{where}: {p['field']}: {p['message']}", file=sys.stderr)
        return 2
    action = args.action
    if action == "list":
        params = {"tenant": args.tenant} if args.tenant else None
        _print(_call(settings, url, "GET", "/admin/keys", params=params).json())
    elif action == "create":
        body: dict[str, Any] = {"tenant": args.tenant, "name": args.name}
        if args.scopes:
            body["scopes"] = list(args.scopes)
        if args.expires_in:
            body["expires_in"] = args.expires_in
        created = _call(settings, url, "POST", "/admin/keys", body).json()
        print(created["key"])
        print(f"created key {created['id']} for tenant {created['tenant']}; it is shown "
              "only now", file=sys.stderr)
    else:
        key_id = key_id_of(args.key)
        _call(settings, url, "DELETE", f"/admin/keys/{key_id}")
        print(f"revoked key {key_id}", file=sys.stderr)
    return 0


def add_command(sub: Any, run: Callable[[Callable[..., int]], Callable[..., int]]) -> None:
    admin = sub.add_parser("admin", help="the admin API of a running gateway")
    admin.add_argument("--url", help="default: http://GATEWAY_HOST:GATEWAY_PORT")
    what = admin.add_subparsers(dest="what", required=True)
    what.add_parser("routes", help="routes and their upstreams' health")
    what.add_parser("tenants", help="tenants, limits and current usage")
    what.add_parser("check", help="re-check the config files now (swap or problems)")
    keys = what.add_parser("keys", help="list, issue and revoke API keys")
    ks = keys.add_subparsers(dest="action", required=True)
    p = ks.add_parser("list")
    p.add_argument("--tenant")
    p = ks.add_parser("create")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--scopes", type=_scopes_arg, default=None)
    p.add_argument("--expires-in", type=parse_duration, default=None)
    p = ks.add_parser("revoke")
    p.add_argument("key", metavar="KEY_ID")
    admin.set_defaults(func=run(cmd_admin))
