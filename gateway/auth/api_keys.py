"""API keys: format, hashing, the stored record, and the per-request check.

A key reads `gw_<key id>_<secret>`:

    gw_k7f3q9x2m4ab_Zq3...43 url-safe characters...

* the key id (12 characters of lower-case base32) is not secret: logs, the CLI and the
  store name a key by it, and it is the store's lookup key;
* the secret is `secrets.token_urlsafe(32)`: 256 random bits.

Only SHA-256 of the secret is stored. A fast hash is the right one here: slow password
hashes (bcrypt, scrypt, argon2) exist to make guessing low-entropy human passwords
expensive, but nobody can enumerate 2**256 random secrets however fast the hash is, and a
slow hash would cost every request milliseconds. Hashes are compared with
`hmac.compare_digest`, so the answer time does not depend on how much of a guess matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from gateway.errors import Unauthenticated

KEY_PREFIX = "gw_"
KEY_ID_LENGTH = 12
SECRET_BYTES = 32
# Scope held by a key created without --scopes: whatever its tenant may call.
ALL_SCOPES = "*"

INVALID_KEY = "the API key is not valid"
REVOKED_KEY = "the API key has been revoked"
EXPIRED_KEY = "the API key has expired"


def new_id(prefix: str = "") -> str:
    """A random, non-secret identifier: 60 bits of lower-case base32."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()
    return prefix + raw[:KEY_ID_LENGTH]


def hash_secret(secret: str) -> bytes:
    """SHA-256 of a high-entropy secret (see the module docstring for why not bcrypt)."""
    return hashlib.sha256(secret.encode("utf-8")).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def split_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    if not presented.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = presented[len(KEY_PREFIX):].partition("_")
    if not sep or len(key_id) != KEY_ID_LENGTH or len(secret) < 22:
        return None
    return key_id, secret


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """What the store keeps about one key: never the key itself."""

    key_id: str
    tenant_id: str
    secret_hash: bytes
    created: float
    name: str = ""
    scopes: tuple[str, ...] = (ALL_SCOPES,)
    expires: float | None = None
    revoked: float | None = None
    replaced_by: str | None = None

    def state(self, now: float) -> str:
        """'active', 'revoked' or 'expired' at time `now`."""
        if self.revoked is not None and self.revoked <= now:
            return "revoked"
        if self.expires is not None and self.expires <= now:
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.key_id, "tenant": self.tenant_id, "hash": self.secret_hash.hex(),
            "created": self.created, "name": self.name, "scopes": list(self.scopes),
            "expires": self.expires, "revoked": self.revoked, "replaced_by": self.replaced_by,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ApiKeyRecord:
        return cls(
            key_id=d["id"], tenant_id=d["tenant"], secret_hash=bytes.fromhex(d["hash"]),
            created=d["created"], name=d.get("name", ""),
            scopes=tuple(d.get("scopes") or (ALL_SCOPES,)), expires=d.get("expires"),
            revoked=d.get("revoked"), replaced_by=d.get("replaced_by"),
        )


def issue_key(tenant_id: str, *, name: str = "", scopes: tuple[str, ...] | None = None,
              expires_in: float | None = None, now: float | None = None
              ) -> tuple[str, ApiKeyRecord]:
    """A new key (shown once to the operator) and the record to store."""
    now = time.time() if now is None else now
    key_id, secret = new_id(), secrets.token_urlsafe(SECRET_BYTES)
    record = ApiKeyRecord(
        key_id=key_id, tenant_id=tenant_id, secret_hash=hash_secret(secret), created=now,
        name=name, scopes=scopes or (ALL_SCOPES,),
        expires=now + expires_in if expires_in else None,
    )
    return f"{KEY_PREFIX}{key_id}_{secret}", record


def rotate_key(old: ApiKeyRecord, grace: float, now: float | None = None
               ) -> tuple[str, ApiKeyRecord, ApiKeyRecord]:
    """A successor with the same tenant, name and scopes; the old one expires after `grace`."""
    now = time.time() if now is None else now
    remaining = None if old.expires is None else max(old.expires - now, 1.0)
    key, successor = issue_key(old.tenant_id, name=old.name, scopes=old.scopes,
                               expires_in=remaining, now=now)
    until = now + grace
    retired = replace(old, expires=min(old.expires, until) if old.expires else until,
                      replaced_by=successor.key_id)
    return key, successor, retired


def verify_key(presented: str, lookup: Any, now: float) -> ApiKeyRecord:
    """The record of a valid key, else Unauthenticated. `lookup(key_id)` is in memory.

    Cost on the request path: one split, one dict lookup, one SHA-256, one compare.
    """
    return verify_split(split_key(presented), lookup, now)


def verify_split(parts: tuple[str, str] | None, lookup: Any, now: float) -> ApiKeyRecord:
    """`verify_key` of a key already split by `split_key`."""
    if parts is None:
        raise Unauthenticated(INVALID_KEY)
    record: ApiKeyRecord | None = lookup(parts[0])
    if record is None or not secret_matches(parts[1], record.secret_hash):
        raise Unauthenticated(INVALID_KEY)
    state = record.state(now)
    if state == "revoked":
        raise Unauthenticated(REVOKED_KEY)
    if state == "expired":
        raise Unauthenticated(EXPIRED_KEY)
    return record
