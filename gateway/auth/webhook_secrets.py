"""Per-tenant webhook signing secrets: records without secret material, and the one key
every secret is derived from.

A webhook is signed with HMAC, so the gateway must be able to produce the secret itself;
storing it would put a plain-text secret in the credential store (the file in
GATEWAY_DATA_DIR or Redis). Instead a record holds only a random id, and the secret is

    whsec_ + base64url(HMAC-SHA256(webhook key, "<tenant>:<secret id>"))

where the webhook key is `GATEWAY_WEBHOOK_KEY` (the same value on every replica and
worker), else `<data_dir>/webhook.key` (32 random bytes, mode 0600, made on first use: the
one-machine default, as the private signing key is). A copy of the credential store
alone reveals no secret.

`gateway webhooks rotate --tenant T [--grace 24h]` issues a new record and prints its
secret once; the tenant's older secrets stay valid for the grace period, during which
deliveries carry one signature per valid secret (as Stripe does), so a receiver can
switch secrets without missing a delivery.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SECRET_PREFIX = "whsec_"
KEY_FILE = "webhook.key"
KEY_BYTES = 32


@dataclass(frozen=True, slots=True)
class WebhookSecretRecord:
    """One issued secret of a tenant: its id and validity, never the secret."""

    secret_id: str
    tenant_id: str
    created: float
    expires: float | None = None  # set when a newer secret replaced it (grace period)

    def valid(self, now: float) -> bool:
        return self.expires is None or self.expires > now

    def to_json(self) -> dict[str, Any]:
        return {"id": self.secret_id, "tenant": self.tenant_id, "created": self.created,
                "expires": self.expires}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WebhookSecretRecord:
        return cls(d["id"], d["tenant"], d["created"], d.get("expires"))


def new_secret_record(tenant_id: str, now: float | None = None) -> WebhookSecretRecord:
    return WebhookSecretRecord(secrets.token_hex(12), tenant_id,
                               time.time() if now is None else now)


def derive_secret(key: bytes, record: WebhookSecretRecord) -> str:
    """The secret a record stands for (what the tenant's receiver is given)."""
    mac = hmac.new(key, f"{record.tenant_id}:{record.secret_id}".encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def load_webhook_key(configured: str | None, data_dir: Path) -> bytes:
    """GATEWAY_WEBHOOK_KEY's bytes, else the data dir's key file (created if missing)."""
    if configured:
        return configured.encode()
    path = data_dir / KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Several processes may start at once: one makes the key, the others read it.
    lock = os.open(path.with_name(KEY_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
        return path.read_bytes()
    finally:
        os.close(lock)
