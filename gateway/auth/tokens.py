"""JWT access tokens: issued by the gateway (ES256), verified from it or external issuers.

Our tokens (RFC 9068 shape, `typ: at+jwt`) carry `iss`, `sub` (the OAuth client id),
`aud`, `iat`, `nbf`, `exp`, `jti`, `scope` (space-separated) and `tenant`.

Verification picks the issuer from the unverified `iss`, then verifies with that issuer's
keys only, its pinned algorithms only, and its audience. So `alg: none`, an HMAC token
"signed" with a public key, a token naming an unknown issuer or kid, a wrong `aud`, an
expired or not-yet-valid token (outside `jwt_leeway`) are all refused.

Without an explicit GATEWAY_TOKEN_ISSUER, each replica's default `iss` is its own
address; a token naming no configured issuer is then ours if its `kid` names one of our
signing keys (still verified with that key): replicas share the signing keys, and only a
holder of one can sign such a token. So replicas accept each other's tokens by default.

An ES256 check costs ~0.1 ms of CPU, the whole per-request budget of authentication, and
clients reuse a token until it expires; so verified tokens are cached by their exact
string (bounded, cleared when any key set changes) and a repeat costs a dict lookup and
an expiry comparison. Revoking an OAuth client still takes effect at once: that check
runs on every request, against the in-memory client snapshot.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import jwt

from gateway.auth.jwks import IssuerKeys
from gateway.auth.oauth_clients import OAuthClientRecord
from gateway.auth.signing_keys import ALGORITHM, SigningKeys
from gateway.context import Principal
from gateway.errors import Unauthenticated

TENANT_CLAIM = "tenant"
SCOPE_CLAIM = "scope"
CACHE_SIZE = 10_000

MALFORMED = "the bearer token is not a well-formed JWT"
UNKNOWN_ISSUER = "the token's issuer is not trusted"
UNKNOWN_KEY = "the token's signing key is unknown"
BAD_ALGORITHM = "the token's algorithm is not allowed for its issuer"
EXPIRED = "the token has expired"
NOT_YET_VALID = "the token is not valid yet"
WRONG_AUDIENCE = "the token is not meant for this gateway"
INVALID = "the token is not valid"
NO_TENANT = "the token names no tenant"
CLIENT_REVOKED = "the token's OAuth client has been revoked"


class TokenIssuer:
    """Signs the gateway's own access tokens with the active signing key."""

    def __init__(self, signing: SigningKeys, issuer: str, audience: str, lifetime: int):
        self.signing, self.issuer, self.audience = signing, issuer, audience
        self.lifetime = lifetime

    def issue(self, client_id: str, tenant_id: str, scopes: Sequence[str]) -> dict[str, Any]:
        """The RFC 6749 §5.1 token answer for one client."""
        now = int(time.time())
        claims = {
            "iss": self.issuer, "sub": client_id, "aud": self.audience, "iat": now,
            "nbf": now, "exp": now + self.lifetime, "jti": secrets.token_urlsafe(16),
            SCOPE_CLAIM: " ".join(scopes), TENANT_CLAIM: tenant_id,
        }
        key = self.signing.active
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM,
                           headers={"kid": key.kid, "typ": "at+jwt"})
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime,
                "scope": claims[SCOPE_CLAIM]}


def _scopes(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list):
        return frozenset(s for s in value if isinstance(s, str))
    return frozenset()


class TokenVerifier:
    """Turns a bearer JWT into a Principal, or raises Unauthenticated."""

    def __init__(self, signing: SigningKeys, issuer: str, audience: str,
                 external: Sequence[IssuerKeys], leeway: float,
                 client_lookup: Callable[[str], OAuthClientRecord | None],
                 own_by_key: bool = False):
        self.signing, self.issuer, self.audience = signing, issuer, audience
        self.own_by_key = own_by_key  # issuer not configured: recognise ours by their kid
        self.external = {k.issuer.issuer: k for k in external}
        self.leeway = leeway
        self.client_lookup = client_lookup
        # token -> (principal, exp, our client id or ""); insertion order = age.
        self._cache: dict[str, tuple[Principal, float, str]] = {}

    def clear_cache(self) -> None:
        self._cache = {}

    async def verify(self, token: str) -> Principal:
        entry = self._cache.get(token)
        now = time.time()
        if entry is None:
            entry = await self._verify(token)
            if len(self._cache) >= CACHE_SIZE:
                del self._cache[next(iter(self._cache))]
            self._cache[token] = entry
        principal, exp, client_id = entry
        if exp + self.leeway <= now:
            self._cache.pop(token, None)
            raise Unauthenticated(EXPIRED)
        if client_id:
            client = self.client_lookup(client_id)
            if client is None or not client.active(now):
                raise Unauthenticated(CLIENT_REVOKED)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float, str]:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated(MALFORMED) from None
        iss, kid, alg = unverified.get("iss"), header.get("kid"), header.get("alg")
        own = iss == self.issuer or (
            self.own_by_key and isinstance(iss, str) and iss not in self.external
            and isinstance(kid, str) and kid in self.signing.by_kid)
        if own:
            algorithms, audience = [ALGORITHM], self.audience
            tenant_claim, scope_claim = TENANT_CLAIM, SCOPE_CLAIM
            signing_key = self.signing.by_kid.get(kid) if isinstance(kid, str) else None
            key = signing_key.public_key if signing_key else None
        elif isinstance(iss, str) and iss in self.external:
            issuer_keys = self.external[iss]
            spec = issuer_keys.issuer
            algorithms, audience = spec.algorithms, spec.audience
            tenant_claim, scope_claim = spec.tenant_claim, spec.scopes_claim
            if alg not in algorithms:
                raise Unauthenticated(BAD_ALGORITHM)
            key = await issuer_keys.key(kid) if isinstance(kid, str) else None
        else:
            raise Unauthenticated(UNKNOWN_ISSUER)
        if alg not in algorithms:
            raise Unauthenticated(BAD_ALGORITHM)
        if key is None:
            raise Unauthenticated(UNKNOWN_KEY)
        try:
            claims = jwt.decode(token, key, algorithms=algorithms, audience=audience,
                                issuer=iss, leeway=self.leeway,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated(EXPIRED) from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated(NOT_YET_VALID) from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(WRONG_AUDIENCE) from None
        except jwt.PyJWTError:
            raise Unauthenticated(INVALID) from None
        tenant = claims.get(tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated(NO_TENANT)
        sub = claims.get("sub")
        subject = sub if isinstance(sub, str) else str(claims.get("jti", ""))
        principal = Principal(tenant_id=tenant, credential_id=subject, kind="jwt",
                              scopes=_scopes(claims.get(scope_claim)))
        return principal, float(claims["exp"]), subject if own else ""
