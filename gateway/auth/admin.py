"""Operator commands for credentials, mounted into the `gateway` CLI.

    gateway keys create --tenant ID [--name N] [--scopes a,b] [--expires-in 30d]
    gateway keys list [--tenant ID]
    gateway keys revoke KEY_ID|KEY
    gateway keys rotate KEY_ID|KEY [--grace 24h]
    gateway keys export [FILE]  |  gateway keys import FILE [--replace]   (backup.py)
    gateway clients create --tenant ID --scopes a,b [--name N]
    gateway clients list [--tenant ID]
    gateway clients revoke CLIENT_ID
    gateway signing-key rotate
    gateway webhooks rotate --tenant ID [--grace 24h]
    gateway webhooks list [--tenant ID]

They use the same store as the server (the file in GATEWAY_DATA_DIR, or Redis when
GATEWAY_REDIS_URL is set), and a serving gateway sees the change within a second.
Secrets go to stdout once, alone, so `KEY=$(gateway keys create --tenant demo)` works;
everything else goes to stderr. No message ever repeats what the operator typed unless it
is a well-formed id: a key given whole (`revoke $KEY`) is named by its id only, and an
argument that is neither an id nor a key is refused without being echoed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.auth.api_keys import (
    ALL_SCOPES,
    KEY_ID_LENGTH,
    KEY_PREFIX,
    issue_key,
    rotate_key,
    split_key,
)
from gateway.auth.backup import (
    BackupError,
    export_credentials,
    import_credentials,
    read_backup,
    write_private,
)
from gateway.auth.key_store import KeyStore, open_key_store
from gateway.auth.oauth_clients import CLIENT_ID_PREFIX, issue_client
from gateway.auth.service import signing_key_path
from gateway.auth.signing_keys import SigningKeys
from gateway.auth.webhook_secrets import derive_secret, load_webhook_key, new_secret_record
from gateway.config import load_config
from gateway.settings import Settings
from gateway.stores import connect_redis

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class UsageError(Exception):
    """A command refused: the message is printed, the exit status is 1."""


def parse_duration(text: str) -> float:
    """'30d', '24h', '15m', '90s', '2w' or plain seconds -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30d, 24h or 15m")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


def _scopes_arg(text: str) -> tuple[str, ...]:
    scopes = tuple(s for s in re.split(r"[,\s]+", text) if s)
    if not scopes:
        raise argparse.ArgumentTypeError("give at least one scope")
    return scopes


_KEY_ID = re.compile(rf"[a-z2-7]{{{KEY_ID_LENGTH}}}")
_CLIENT_ID = re.compile(rf"{CLIENT_ID_PREFIX}[a-z2-7]{{{KEY_ID_LENGTH}}}")
NOT_A_KEY_ID = ("that is neither a key id nor a key (give the ID that `gateway keys list` "
                "shows, or the whole key); it is not repeated here in case it is a secret")
NOT_A_CLIENT_ID = ("that is not a client id (gwc_ followed by 12 characters, as `gateway "
                   "clients list` shows); it is not repeated here in case it is a secret")


def key_id_of(text: str) -> str:
    """The key id in a key id, `gw_<id>`, or a whole key; UsageError (never echoing)."""
    parts = split_key(text)
    if parts is not None:
        return parts[0]
    candidate = text.removeprefix(KEY_PREFIX).rstrip("_")
    if _KEY_ID.fullmatch(candidate):
        return candidate
    raise UsageError(NOT_A_KEY_ID)


def client_id_of(text: str) -> str:
    if _CLIENT_ID.fullmatch(text):
        return text
    raise UsageError(NOT_A_CLIENT_ID)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)) if t else "-"


def _check_tenant_and_scopes(settings: Settings, tenant: str,
                             scopes: tuple[str, ...] | None) -> None:
    """The tenant must exist in policies/tenants.yaml; scopes must be ones routes name."""
    config = load_config(settings.routes_file, settings.policies_dir)
    if tenant not in config.tenants:
        known = ", ".join(sorted(config.tenants)) or "none"
        raise UsageError(f"unknown tenant {tenant!r} (tenants.yaml defines: {known})")
    known_scopes = {s for r in config.routes.values() for s in r.scopes}
    for scope in scopes or ():
        if scope != ALL_SCOPES and scope not in known_scopes:
            raise UsageError(f"unknown scope {scope!r} (routes name: "
                             f"{', '.join(sorted(known_scopes)) or 'none'})")


async def _with_store(settings: Settings, action: Callable[[KeyStore], Awaitable[int]]
                      ) -> int:
    redis = connect_redis(settings.redis_url) if settings.redis_url else None
    store = open_key_store(settings.data_dir, redis)
    try:
        await store.refresh()
        return await action(store)
    finally:
        await store.close()
        if redis is not None:
            await redis.aclose()


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    async def create(store: KeyStore) -> int:
        _check_tenant_and_scopes(settings, args.tenant, args.scopes)
        key, record = issue_key(args.tenant, name=args.name, scopes=args.scopes,
                                expires_in=args.expires_in)
        await store.put_key(record)
        print(key)
        print(f"created key {record.key_id} for tenant {record.tenant_id}; "
              "it is shown only now", file=sys.stderr)
        return 0

    async def listing(store: KeyStore) -> int:
        now = time.time()
        rows = [[r.key_id, r.tenant_id, r.name or "-", ",".join(r.scopes), _when(r.created),
                 _when(r.expires), _when(r.revoked), r.state(now)]
                for r in store.list_keys() if args.tenant in (None, r.tenant_id)]
        _table(rows, ["ID", "TENANT", "NAME", "SCOPES", "CREATED", "EXPIRES", "REVOKED",
                      "STATE"])
        return 0

    async def revoke(store: KeyStore) -> int:
        key_id = key_id_of(args.key)
        record = store.key(key_id)
        if record is None:
            raise UsageError(f"no key with id {key_id}")
        await store.put_key(replace(record, revoked=record.revoked or time.time()))
        print(f"revoked key {record.key_id}", file=sys.stderr)
        return 0

    async def rotate(store: KeyStore) -> int:
        key_id = key_id_of(args.key)
        old = store.key(key_id)
        if old is None or old.state(time.time()) != "active":
            raise UsageError(f"no active key with id {key_id}")
        key, successor, retired = rotate_key(old, args.grace)
        await store.put_key(successor)
        await store.put_key(retired)
        print(key)
        print(f"created key {successor.key_id}; {old.key_id} stops working at "
              f"{_when(retired.expires)}", file=sys.stderr)
        return 0

    actions = {"create": create, "list": listing, "revoke": revoke, "rotate": rotate}
    async def export(store: KeyStore) -> int:
        data = export_credentials(store)
        if args.file in (None, "-"):
            sys.stdout.buffer.write(data + b"\n")
        else:
            write_private(Path(args.file), data)
        print(f"exported {len(store.list_keys())} keys and {len(store.list_clients())} "
              "clients", file=sys.stderr)
        return 0

    async def restore(store: KeyStore) -> int:
        written, kept = await import_credentials(store, backup[0], backup[1], args.replace)
        print(f"imported {written} records; {kept} already present, kept as they were"
              + (" (--replace overwrites them)" if kept else ""), file=sys.stderr)
        return 0

    if args.action == "import":
        try:
            backup = read_backup(Path(args.file).read_bytes(), args.file)
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
        except BackupError as exc:
            raise UsageError(str(exc)) from None
    actions["export"], actions["import"] = export, restore
    return asyncio.run(_with_store(settings, actions[args.action]))


def cmd_clients(args: argparse.Namespace, settings: Settings) -> int:
    async def create(store: KeyStore) -> int:
        _check_tenant_and_scopes(settings, args.tenant, args.scopes)
        secret, record = issue_client(args.tenant, args.scopes, name=args.name)
        await store.put_client(record)
        print(f"CLIENT_ID={record.client_id}")
        print(f"CLIENT_SECRET={secret}")
        print(f"created client {record.client_id} for tenant {record.tenant_id}; "
              "the secret is shown only now", file=sys.stderr)
        return 0

    async def listing(store: KeyStore) -> int:
        rows = [[r.client_id, r.tenant_id, r.name or "-", ",".join(r.scopes),
                 _when(r.created), _when(r.revoked)]
                for r in store.list_clients() if args.tenant in (None, r.tenant_id)]
        _table(rows, ["ID", "TENANT", "NAME", "SCOPES", "CREATED", "REVOKED"])
        return 0

    async def revoke(store: KeyStore) -> int:
        client_id = client_id_of(args.client_id)
        record = store.client(client_id)
        if record is None:
            raise UsageError(f"no client {client_id}")
        await store.put_client(replace(record, revoked=record.revoked or time.time()))
        print(f"revoked client {record.client_id}", file=sys.stderr)
        return 0

    actions = {"create": create, "list": listing, "revoke": revoke}
    return asyncio.run(_with_store(settings, actions[args.action]))


def cmd_signing_key(args: argparse.Namespace, settings: Settings) -> int:
    keys = SigningKeys(signing_key_path(settings))
    # Retired keys stay published until every token they signed has expired.
    active = keys.rotate(retire_after=settings.token_lifetime + settings.jwt_leeway)
    print(f"new signing key {active.kid} ({active.path})", file=sys.stderr)
    return 0


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    async def rotate(store: KeyStore) -> int:
        _check_tenant_and_scopes(settings, args.tenant, None)
        now = time.time()
        key = load_webhook_key(settings.webhook_key.get_secret_value()
                               if settings.webhook_key else None, settings.data_dir)
        record = new_secret_record(args.tenant, now)
        await store.put_webhook_secret(record)
        retired = 0
        for old in store.webhook_secrets(args.tenant):
            if old.secret_id != record.secret_id and old.valid(now) and (
                    old.expires is None or old.expires > now + args.grace):
                await store.put_webhook_secret(replace(old, expires=now + args.grace))
                retired += 1
        print(derive_secret(key, record))
        ends = f"; the previous one stays valid until {_when(now + args.grace)}" \
            if retired else ""
        print(f"new webhook secret {record.secret_id} for tenant {args.tenant}{ends}; "
              "it is shown only now", file=sys.stderr)
        return 0

    async def listing(store: KeyStore) -> int:
        now = time.time()
        rows = [[r.secret_id, r.tenant_id, _when(r.created), _when(r.expires),
                 "valid" if r.valid(now) else "expired"]
                for r in store.webhook_secrets(args.tenant)]
        _table(rows, ["ID", "TENANT", "CREATED", "EXPIRES", "STATE"])
        return 0

    actions = {"rotate": rotate, "list": listing}
    return asyncio.run(_with_store(settings, actions[args.action]))


def add_commands(sub: Any, run: Callable[[Callable[..., int]], Callable[..., int]]) -> None:
    """Add `keys`, `clients` and `signing-key` to the CLI's subparsers.

    `run(cmd)` wraps a `cmd(args, settings)` into the CLI's `func(args)`.
    """
    keys = sub.add_parser("keys", help="issue, list, rotate and revoke API keys")
    ks = keys.add_subparsers(dest="action", required=True)
    p = ks.add_parser("create", help="issue a key (printed once)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--name", default="")
    p.add_argument("--scopes", type=_scopes_arg, default=None,
                   help="comma-separated; default: all the tenant may use")
    p.add_argument("--expires-in", type=parse_duration, default=None, help="e.g. 30d")
    p = ks.add_parser("list", help="list keys (never their secrets)")
    p.add_argument("--tenant")
    p = ks.add_parser("revoke", help="stop a key at once")
    p.add_argument("key", metavar="KEY_ID", help="its id, or the whole key")
    p = ks.add_parser("rotate", help="issue a successor; the old key lives for --grace")
    p.add_argument("key", metavar="KEY_ID", help="its id, or the whole key")
    p.add_argument("--grace", type=parse_duration, default=86400.0, help="default 24h")
    p = ks.add_parser("export", help="every key and client as JSON (hashes, no secrets)")
    p.add_argument("file", nargs="?", help="written with mode 0600; default: stdout")
    p = ks.add_parser("import", help="write an export into this store")
    p.add_argument("file")
    p.add_argument("--replace", action="store_true",
                   help="overwrite records the store already has")
    keys.set_defaults(func=run(cmd_keys))

    clients = sub.add_parser("clients", help="issue, list and revoke OAuth2 clients")
    cs = clients.add_subparsers(dest="action", required=True)
    p = cs.add_parser("create", help="register a client (secret printed once)")
    p.add_argument("--tenant", required=True)
    p.add_argument("--scopes", type=_scopes_arg, required=True)
    p.add_argument("--name", default="")
    p = cs.add_parser("list", help="list clients (never their secrets)")
    p.add_argument("--tenant")
    p = cs.add_parser("revoke", help="stop a client and its tokens at once")
    p.add_argument("client_id")
    clients.set_defaults(func=run(cmd_clients))

    signing = sub.add_parser("signing-key", help="rotate the token signing key")
    ss = signing.add_subparsers(dest="action", required=True)
    ss.add_parser("rotate", help="new active key; old ones published until tokens expire")
    signing.set_defaults(func=run(cmd_signing_key))

    hooks = sub.add_parser("webhooks", help="issue and rotate tenants' webhook secrets")
    hs = hooks.add_subparsers(dest="action", required=True)
    p = hs.add_parser("rotate", help="issue a new secret (printed once); the old one "
                      "stays valid for --grace")
    p.add_argument("--tenant", required=True)
    p.add_argument("--grace", type=parse_duration, default=86400.0, help="default 24h")
    p = hs.add_parser("list", help="list secret ids (never the secrets)")
    p.add_argument("--tenant")
    hooks.set_defaults(func=run(cmd_webhooks))
