"""Where API keys and OAuth clients live, and how every gateway process sees changes fast.

Both stores keep a full in-process snapshot (key id -> record, client id -> record) that
requests read with a dict lookup: no file read and no Redis round-trip per request. A
watcher re-checks the backing store every `key_cache_ttl` seconds (0.25 s by default) and
reloads the snapshot when it changed, so a key created, revoked or rotated by the CLI, or
by another replica, is seen within that interval:

* `FileKeyStore` (the one-machine default): one JSON file in the data directory, mode
  0600, replaced atomically (write a temp file, fsync, rename) under an flock so two CLI
  runs cannot lose each other's change. The check is one `stat`.
* `RedisKeyStore` (replicas): two hashes plus a version token changed after each change.
  The check is one `GET` of the version per process per interval, whatever the request
  rate; the hashes are fetched only when it changed. One Redis, a Redis Cluster or
  Sentinel alike (no MULTI: see `refresh`).

Chosen over a per-key TTL cache because unknown keys (typos, attackers) then cost no
round-trip either, and over pub/sub because a missed message can never leave a revoked
key alive: the counter is compared, not announced. The price is a full reload per change,
fine for the thousands of credentials a gateway holds. If the store cannot be checked for
`key_store_max_staleness` seconds, `stale_for` says so and authentication fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import orjson
import structlog
from redis.exceptions import RedisError

from gateway.auth.api_keys import ApiKeyRecord
from gateway.auth.oauth_clients import OAuthClientRecord
from gateway.auth.webhook_secrets import WebhookSecretRecord
from gateway.errors import ServiceUnavailable
from gateway.stores.redis_ha import RedisClient

log = structlog.get_logger("gateway.auth")

STORE_UNREACHABLE = "the credential store is unreachable"


class KeyStore(Protocol):
    """API keys and OAuth clients: reads from memory, writes through to the store."""

    def key(self, key_id: str) -> ApiKeyRecord | None: ...
    def client(self, client_id: str) -> OAuthClientRecord | None: ...
    def list_keys(self) -> list[ApiKeyRecord]: ...
    def list_clients(self) -> list[OAuthClientRecord]: ...
    def webhook_secrets(self, tenant_id: str | None = None) -> list[WebhookSecretRecord]: ...
    def stale_for(self, now: float) -> float: ...
    async def refresh(self) -> bool: ...
    async def put_key(self, record: ApiKeyRecord) -> None: ...
    async def put_client(self, record: OAuthClientRecord) -> None: ...
    async def put_many(self, keys: list[ApiKeyRecord],
                       clients: list[OAuthClientRecord]) -> None: ...
    async def put_webhook_secret(self, record: WebhookSecretRecord) -> None: ...
    async def close(self) -> None: ...


class _Snapshot:
    """The in-memory half both stores share."""

    def __init__(self) -> None:
        self._keys: dict[str, ApiKeyRecord] = {}
        self._clients: dict[str, OAuthClientRecord] = {}
        self._webhooks: dict[str, WebhookSecretRecord] = {}
        self._confirmed = time.monotonic()

    def key(self, key_id: str) -> ApiKeyRecord | None:
        return self._keys.get(key_id)

    def client(self, client_id: str) -> OAuthClientRecord | None:
        return self._clients.get(client_id)

    def list_keys(self) -> list[ApiKeyRecord]:
        return sorted(self._keys.values(), key=lambda r: r.created)

    def list_clients(self) -> list[OAuthClientRecord]:
        return sorted(self._clients.values(), key=lambda r: r.created)

    def webhook_secrets(self, tenant_id: str | None = None) -> list[WebhookSecretRecord]:
        """A tenant's (or everyone's) webhook secret records, oldest first."""
        return sorted((r for r in self._webhooks.values()
                       if tenant_id in (None, r.tenant_id)), key=lambda r: r.created)

    def stale_for(self, now: float) -> float:
        """Seconds since the store was last checked successfully (monotonic clock)."""
        return now - self._confirmed

    def _install(self, keys: dict[str, Any], clients: dict[str, Any],
                 webhooks: dict[str, Any]) -> None:
        # Built aside and swapped whole: a request never sees a half-loaded snapshot.
        self._keys = {k: ApiKeyRecord.from_json(v) for k, v in keys.items()}
        self._clients = {k: OAuthClientRecord.from_json(v) for k, v in clients.items()}
        self._webhooks = {k: WebhookSecretRecord.from_json(v) for k, v in webhooks.items()}


async def watch(store: KeyStore, interval: float) -> None:
    """Background task: refresh the snapshot every `interval`; never dies."""
    failing = False
    while True:
        try:
            if await store.refresh():
                log.info("credentials_reloaded", keys=len(store.list_keys()),
                         clients=len(store.list_clients()))
            if failing:
                log.info("credential_store_recovered")
            failing = False
        except Exception as exc:
            if not failing:
                log.warning("credential_store_unreachable", error=type(exc).__name__)
            failing = True
        await asyncio.sleep(interval)


class FileKeyStore(_Snapshot):
    """One JSON file on local disk: the default for a single machine."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._signature: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"version": 1, "keys": {}, "clients": {}}
        return data

    async def refresh(self) -> bool:
        sig = self._stat()
        self._confirmed = time.monotonic()
        if sig == self._signature:
            return False
        data = await asyncio.to_thread(self._read)
        self._install(data.get("keys", {}), data.get("clients", {}),
                      data.get("webhooks", {}))
        self._signature = sig
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _update(self, section: str, record_id: str, value: dict[str, Any]) -> None:
        self._update_many({section: {record_id: value}})

    def _update_many(self, sections: dict[str, dict[str, Any]]) -> None:
        with self._locked():
            data = self._read()  # the latest file, not our snapshot: no lost updates
            for section, records in sections.items():
                data.setdefault(section, {}).update(records)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)

    async def put_key(self, record: ApiKeyRecord) -> None:
        await asyncio.to_thread(self._update, "keys", record.key_id, record.to_json())
        await self.refresh()

    async def put_client(self, record: OAuthClientRecord) -> None:
        await asyncio.to_thread(self._update, "clients", record.client_id, record.to_json())
        await self.refresh()

    async def put_many(self, keys: list[ApiKeyRecord],
                       clients: list[OAuthClientRecord]) -> None:
        """Many records in one replace of the file (a restore, gateway/auth/backup.py)."""
        await asyncio.to_thread(self._update_many, {
            "keys": {r.key_id: r.to_json() for r in keys},
            "clients": {r.client_id: r.to_json() for r in clients}})

    async def put_webhook_secret(self, record: WebhookSecretRecord) -> None:
        await asyncio.to_thread(self._update, "webhooks", record.secret_id, record.to_json())
        await self.refresh()

    async def close(self) -> None:
        return None


class RedisKeyStore(_Snapshot):
    """Three Redis hashes (keys, clients, webhook secret records) and a version token
    (changed by every write), shared by every replica."""

    def __init__(self, redis: RedisClient, prefix: str = "gw:auth:"):
        super().__init__()
        self.redis = redis
        self.keys_hash, self.clients_hash = prefix + "keys", prefix + "clients"
        self.webhooks_hash = prefix + "webhooks"
        self.version_key = prefix + "version"
        self._version: bytes | None = b"never"

    async def refresh(self) -> bool:
        # The version is read before the hashes and written after them (`_put`), so
        # the hashes read are at least as new as the version kept: a write landing in
        # between only makes the next check reload once more. No MULTI is needed, so
        # the three keys may live on different nodes of a Redis Cluster.
        try:
            # Replies are bytes: decode_responses is off (connect_redis).
            version = cast("bytes | None", await self.redis.get(self.version_key))
            if version == self._version:
                self._confirmed = time.monotonic()
                return False
            keys = cast("dict[bytes, bytes]", await self.redis.hgetall(self.keys_hash))
            clients = cast("dict[bytes, bytes]", await self.redis.hgetall(self.clients_hash))
            webhooks = cast("dict[bytes, bytes]",
                            await self.redis.hgetall(self.webhooks_hash))
        except RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        self._install({k.decode(): orjson.loads(v) for k, v in keys.items()},
                      {k.decode(): orjson.loads(v) for k, v in clients.items()},
                      {k.decode(): orjson.loads(v) for k, v in webhooks.items()})
        self._version = version
        self._confirmed = time.monotonic()
        return True

    async def _put(self, hash_name: str, record_id: str, value: dict[str, Any]) -> None:
        try:
            await self.redis.hset(hash_name, record_id, orjson.dumps(value))
            # Then the version (see refresh). A random one, not a counter: a Redis
            # restarted empty and refilled could count back up to a version a replica
            # already holds.
            await self.redis.set(self.version_key, secrets.token_hex(8))
        except RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        await self.refresh()

    async def put_key(self, record: ApiKeyRecord) -> None:
        await self._put(self.keys_hash, record.key_id, record.to_json())

    async def put_client(self, record: OAuthClientRecord) -> None:
        await self._put(self.clients_hash, record.client_id, record.to_json())

    async def put_many(self, keys: list[ApiKeyRecord],
                       clients: list[OAuthClientRecord]) -> None:
        """Many records, a thousand per HSET, then one version change (a restore)."""
        try:
            for hash_name, records in ((self.keys_hash, {r.key_id: r for r in keys}),
                                       (self.clients_hash, {r.client_id: r for r in clients})):
                items = [(k, orjson.dumps(r.to_json())) for k, r in records.items()]
                for i in range(0, len(items), 1000):
                    await self.redis.hset(hash_name, mapping=dict(items[i:i + 1000]))
            await self.redis.set(self.version_key, secrets.token_hex(8))
        except RedisError as exc:
            raise ServiceUnavailable(STORE_UNREACHABLE) from exc
        await self.refresh()

    async def put_webhook_secret(self, record: WebhookSecretRecord) -> None:
        await self._put(self.webhooks_hash, record.secret_id, record.to_json())

    async def close(self) -> None:
        return None  # the Redis client belongs to whoever made it


def open_key_store(data_dir: Path, redis: RedisClient | None) -> KeyStore:
    """Redis when the gateway shares state (GATEWAY_REDIS_URL), else the local file."""
    if redis is not None:
        return RedisKeyStore(redis)
    return FileKeyStore(data_dir / "credentials.json")
