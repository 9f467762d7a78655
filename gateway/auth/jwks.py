"""An external identity provider's signing keys: its JWKS, fetched with httpx and cached.

The set is fetched on first use, again when older than `jwks_max_age`, and again when a
token names a `kid` the cached set lacks (the provider rotated its keys) — but at most
once per `jwks_min_refresh_interval`, so a flood of tokens with made-up kids costs the
provider one request per interval, not one per token. Concurrent misses share one fetch.
Keys are parsed into public-key objects once per fetch; symmetric (`oct`) keys are
dropped, since a shared secret in a public document would let anyone sign.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import structlog

from gateway.settings import ExternalIssuer

log = structlog.get_logger("gateway.auth")

FETCH_TIMEOUT = 5.0


class IssuerKeys:
    """The cached JWKS of one external issuer."""

    def __init__(self, issuer: ExternalIssuer, http: httpx.AsyncClient,
                 min_refresh_interval: float, max_age: float,
                 on_change: Callable[[], None] = lambda: None):
        self.issuer = issuer
        self.http = http
        self.min_refresh_interval = min_refresh_interval
        self.max_age = max_age
        self.keys: dict[str, Any] = {}  # kid -> public key object
        self.fetched_at: float | None = None  # monotonic, last attempt
        self.on_change = on_change  # e.g. drop verified tokens signed by a removed key
        self._lock = asyncio.Lock()

    async def key(self, kid: str) -> Any | None:
        """The public key for `kid`, refetching the set if allowed; None if unknown."""
        now = time.monotonic()
        if self.fetched_at is None or now - self.fetched_at > self.max_age:
            await self._refresh(force=True)
        elif kid not in self.keys:
            await self._refresh(force=False)
        return self.keys.get(kid)

    async def _refresh(self, force: bool) -> None:
        async with self._lock:
            now = time.monotonic()
            if self.fetched_at is not None:
                age = now - self.fetched_at
                # Someone refreshed while we waited, or the unknown-kid budget is spent.
                if age < self.min_refresh_interval or (force and age <= self.max_age):
                    return
            self.fetched_at = now
            try:
                r = await self.http.get(self.issuer.jwks_url, timeout=FETCH_TIMEOUT)
                r.raise_for_status()
                keys = parse_jwks(r.json())
            except (httpx.HTTPError, ValueError) as exc:
                # Keep the last good set: an IdP outage must not lock out valid tokens.
                log.warning("jwks_fetch_failed", issuer=self.issuer.issuer,
                            error=type(exc).__name__)
                return
            changed = keys.keys() != self.keys.keys()
            self.keys = keys
            if changed:
                self.on_change()
            log.info("jwks_fetched", issuer=self.issuer.issuer, kids=sorted(keys))


def parse_jwks(document: Any) -> dict[str, Any]:
    """kid -> public key object for every usable asymmetric signing key in a JWK Set."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK Set")
    out: dict[str, Any] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str):
            continue
        if jwk.get("kty") not in ("RSA", "EC", "OKP") or jwk.get("use", "sig") != "sig":
            continue
        try:
            out[jwk["kid"]] = jwt.PyJWK(jwk).key
        except jwt.PyJWTError:
            continue
    return out
