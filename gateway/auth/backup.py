"""Backups of the credential store: `gateway keys export` and `gateway keys import`.

    gateway keys export [FILE]             every API key and OAuth client, as JSON
    gateway keys import FILE [--replace]   write them into this gateway's store

The file is the file key store's own format (`{"version": 1, "keys": {...},
"clients": {...}}`), so an export is also a valid `credentials.json` and the same file
moves credentials between the file store and Redis, one Redis and another, or a Redis
and a Redis Cluster. It holds what the store holds: ids, tenants, scopes, dates and the
SHA-256 hashes of the secrets, never a secret; still, whoever has it can tell which keys
exist, so FILE is created with mode 0600.

Import checks every record before writing any (a file that does not parse changes
nothing), then writes them in one batch. A record whose id the store already has is
kept as the store has it, unless `--replace`: re-importing the same backup is harmless,
and an old backup cannot bring back a key revoked since.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from gateway.auth.api_keys import ApiKeyRecord
from gateway.auth.key_store import KeyStore
from gateway.auth.oauth_clients import OAuthClientRecord

FORMAT_VERSION = 1


class BackupError(ValueError):
    """The file is not a credential backup this gateway can read (the message says why)."""


def export_credentials(store: KeyStore) -> bytes:
    data = {"version": FORMAT_VERSION,
            "keys": {r.key_id: r.to_json() for r in store.list_keys()},
            "clients": {r.client_id: r.to_json() for r in store.list_clients()}}
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


def write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_backup(raw: bytes, source: str
                ) -> tuple[list[ApiKeyRecord], list[OAuthClientRecord]]:
    """Every record of a backup, checked; BackupError names the first bad one."""
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BackupError(f"{source}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
        raise BackupError(f"{source}: not a credential backup (version {FORMAT_VERSION})")
    keys = [ApiKeyRecord.from_json(v) for v in _section(data, "keys", source)]
    clients = [OAuthClientRecord.from_json(v) for v in _section(data, "clients", source)]
    return keys, clients


def _section(data: dict[str, Any], name: str, source: str) -> list[dict[str, Any]]:
    """The records of one section, each parsed once to check it (BackupError if not)."""
    parse = ApiKeyRecord.from_json if name == "keys" else OAuthClientRecord.from_json
    records = data.get(name, {})
    if not isinstance(records, dict):
        raise BackupError(f"{source}: {name}: expected an object of records")
    for record_id, value in records.items():
        try:
            record = parse(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupError(f"{source}: {name}.{record_id}: invalid record "
                              f"({type(exc).__name__}: {exc})") from None
        found = record.key_id if isinstance(record, ApiKeyRecord) else record.client_id
        if found != record_id:
            raise BackupError(f"{source}: {name}.{record_id}: its id says {found!r}")
    return list(records.values())


async def import_credentials(store: KeyStore, keys: list[ApiKeyRecord],
                             clients: list[OAuthClientRecord], replace: bool
                             ) -> tuple[int, int]:
    """Write the records (one batch); returns (written, kept as the store had them)."""
    new_keys = [r for r in keys if replace or store.key(r.key_id) is None]
    new_clients = [r for r in clients if replace or store.client(r.client_id) is None]
    await store.put_many(new_keys, new_clients)
    written = len(new_keys) + len(new_clients)
    return written, len(keys) + len(clients) - written
