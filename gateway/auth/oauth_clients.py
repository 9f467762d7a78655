"""OAuth2 clients (RFC 6749 §2) of the client-credentials grant: record and secret.

A client id reads `gwc_<12 base32 characters>` (not secret); its secret is
`secrets.token_urlsafe(32)`, stored as SHA-256 only, for the reasons given in
`gateway.auth.api_keys`. Unlike API keys, a client always names its scopes: a token can
never carry more than the client's own.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from gateway.auth.api_keys import SECRET_BYTES, hash_secret, new_id, secret_matches

CLIENT_ID_PREFIX = "gwc_"
GRANT_TYPE = "client_credentials"
AUTH_METHODS = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True, slots=True)
class OAuthClientRecord:
    """One registered client; implements the parts of authlib's ClientMixin the
    client-credentials grant calls."""

    client_id: str
    tenant_id: str
    secret_hash: bytes
    scopes: tuple[str, ...]
    created: float
    name: str = ""
    revoked: float | None = None

    def active(self, now: float) -> bool:
        return self.revoked is None or self.revoked > now

    # -- authlib ClientMixin --
    def get_client_id(self) -> str:
        return self.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(self.scopes)
        return " ".join(s for s in scope.split() if s in self.scopes)

    # -- storage --
    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.client_id, "tenant": self.tenant_id, "hash": self.secret_hash.hex(),
            "scopes": list(self.scopes), "created": self.created, "name": self.name,
            "revoked": self.revoked,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OAuthClientRecord:
        return cls(
            client_id=d["id"], tenant_id=d["tenant"], secret_hash=bytes.fromhex(d["hash"]),
            scopes=tuple(d["scopes"]), created=d["created"], name=d.get("name", ""),
            revoked=d.get("revoked"),
        )


def issue_client(tenant_id: str, scopes: tuple[str, ...], *, name: str = "",
                 now: float | None = None) -> tuple[str, OAuthClientRecord]:
    """A new client: its secret (shown once to the operator) and the record to store."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    record = OAuthClientRecord(
        client_id=new_id(CLIENT_ID_PREFIX), tenant_id=tenant_id,
        secret_hash=hash_secret(secret), scopes=scopes, name=name,
        created=time.time() if now is None else now,
    )
    return secret, record
