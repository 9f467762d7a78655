"""`AuthService`: every credential mechanism, built once per app, started in lifespan.

`create_app` builds it (the signing key is loaded or created then, so a bad key stops
the start); the lifespan calls `start(redis, http)`, which opens the key store, loads its
first snapshot and starts the watchers; the pipeline's authenticate step and the OAuth
endpoints only read from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import httpx
import structlog

from gateway.auth.api_keys import ApiKeyRecord, split_key, verify_split
from gateway.auth.jwks import IssuerKeys
from gateway.auth.key_store import KeyStore, open_key_store, watch
from gateway.auth.oauth_clients import OAuthClientRecord
from gateway.auth.signing_keys import SigningKeys
from gateway.auth.tokens import TokenIssuer, TokenVerifier
from gateway.context import Principal
from gateway.errors import ServiceUnavailable
from gateway.settings import Settings
from gateway.stores.redis_ha import RedisClient

log = structlog.get_logger("gateway.auth")

STORE_STALE = "credentials cannot be checked right now"
MISS_REFRESH_INTERVAL = 0.1  # seconds between store re-checks caused by unknown key ids
MAX_CACHED_PRINCIPALS = 100_000  # past this many keys in use, the cache starts over


def signing_key_path(settings: Settings) -> Path:
    return settings.signing_key_path or settings.data_dir / "signing-keys"


class AuthService:
    """Key store, signing keys, token issuer and verifier of one gateway process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.signing = SigningKeys(signing_key_path(settings))
        self.issuer = TokenIssuer(self.signing, settings.issuer_url, settings.token_audience,
                                  settings.token_lifetime)
        self.store: KeyStore | None = None
        self.external: list[IssuerKeys] = []
        self.verifier = TokenVerifier(self.signing, settings.issuer_url,
                                      settings.token_audience, [], settings.jwt_leeway,
                                      self.client, own_by_key=not settings.token_issuer)
        self._tasks: list[asyncio.Task[None]] = []
        self._last_miss_refresh = 0.0
        self._principals: dict[str, tuple[ApiKeyRecord, Principal]] = {}

    async def start(self, redis: RedisClient | None, http: httpx.AsyncClient) -> None:
        s = self.settings
        self.store = open_key_store(s.data_dir, redis)
        try:
            await self.store.refresh()
        except ServiceUnavailable:
            log.warning("credential_store_unreachable_at_start")
        self.external = [
            IssuerKeys(spec, http, s.jwks_min_refresh_interval, s.jwks_max_age,
                       on_change=self.verifier.clear_cache)
            for spec in s.external_issuers
        ]
        self.verifier.external = {k.issuer.issuer: k for k in self.external}
        self._tasks = [
            asyncio.create_task(watch(self.store, s.key_cache_ttl), name="credentials-watch"),
            asyncio.create_task(self._watch_signing_keys(), name="signing-keys-watch"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.store is not None:
            await self.store.close()

    async def _watch_signing_keys(self) -> None:
        signature = self.signing.signature()
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            try:
                if self.signing.signature() != signature:
                    await asyncio.to_thread(self.signing.load)
                    signature = self.signing.signature()
                    self.verifier.clear_cache()
                    log.info("signing_keys_reloaded", active=self.signing.active.kid,
                             published=len(self.signing.by_kid))
            except Exception:
                log.exception("signing_keys_reload_failed")

    async def ready(self) -> tuple[bool, str]:
        """Readiness: the credential snapshot was confirmed recently enough."""
        if self.store is None:
            return False, "not started"
        age = self.store.stale_for(time.monotonic())
        ok = age <= self.settings.key_store_max_staleness
        store = self.store
        return ok, (f"{len(store.list_keys())} keys, {len(store.list_clients())} clients, "
                    f"checked {age:.2f}s ago")

    def key_store(self) -> KeyStore:
        """The credential store, once `start` has opened it (webhook secrets too)."""
        assert self.store is not None, "AuthService.start has not run"
        return self.store

    # -- request path --
    def _live_store(self) -> KeyStore:
        store = self.store
        if store is None or store.stale_for(time.monotonic()) > \
                self.settings.key_store_max_staleness:
            raise ServiceUnavailable(STORE_STALE)
        return store

    async def verify_api_key(self, presented: str) -> Principal:
        """An API key's principal; its scopes are the key's own, or '*' (see docs).

        An unknown key id re-checks the store at once (at most every 100 ms), so a key
        used right after `gateway keys create` works without waiting for the next poll.
        """
        store = self._live_store()
        parts = split_key(presented)
        if parts is not None and store.key(parts[0]) is None:
            await self._refresh_after_miss(store)
        record = verify_split(parts, store.key, time.time())
        # One Principal per stored record (nothing writes to a principal): a key's
        # requests share it until the record changes (rotation, revocation, reload).
        known = self._principals.get(record.key_id)
        if known is not None and known[0] is record:
            return known[1]
        principal = Principal(tenant_id=record.tenant_id, credential_id=record.key_id,
                              kind="api_key", scopes=frozenset(record.scopes))
        if len(self._principals) >= MAX_CACHED_PRINCIPALS:
            self._principals.clear()
        self._principals[record.key_id] = (record, principal)
        return principal

    async def _refresh_after_miss(self, store: KeyStore) -> None:
        """Re-check the store for an id the snapshot lacks (at most every 100 ms, so a
        flood of unknown ids costs one check per interval, not one each)."""
        now = time.monotonic()
        if now - self._last_miss_refresh >= MISS_REFRESH_INTERVAL:
            self._last_miss_refresh = now
            with contextlib.suppress(ServiceUnavailable):
                await store.refresh()

    async def recheck_client(self, client_id: str | None) -> None:
        """Before a token request: an unknown client id re-checks the store at once, so a
        client used right after `gateway clients create` works without waiting for the
        next poll (the token endpoint's lookups themselves are synchronous)."""
        store = self.store
        if client_id and store is not None and store.client(client_id) is None:
            await self._refresh_after_miss(store)

    async def verify_token(self, token: str) -> Principal:
        return await self.verifier.verify(token)

    def client(self, client_id: str) -> OAuthClientRecord | None:
        """An active OAuth client from the in-memory snapshot (authlib calls this sync)."""
        if self.store is None:
            return None
        record = self.store.client(client_id)
        if record is None or not record.active(time.time()):
            return None
        return record
