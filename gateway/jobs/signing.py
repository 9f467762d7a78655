"""Webhook signatures: how the gateway signs a delivery and how a receiver verifies it.

Headers of every delivery (docs/jobs.md), in the style of Stripe's `Stripe-Signature`:

    Gateway-Webhook-Id:  <delivery id>       the same on every retry of one delivery
    Gateway-Signature:   t=<unix seconds>,v1=<hex>[,v1=<hex>...]

Each `v1` is hex(HMAC-SHA256(secret, f"{t}.{body}")) over the raw body bytes, one per valid
secret of the tenant (two during a rotation's grace period). A receiver accepts the
delivery when any `v1` matches one of its secrets, compared in constant time, and `t` is
within its tolerance of its own clock (300 s by default), which stops the replay of an
old delivery. `verify` below is that check; docs/jobs.md has the same in PHP.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "Gateway-Signature"
ID_HEADER = "Gateway-Webhook-Id"
DEFAULT_TOLERANCE = 300


class SignatureError(Exception):
    """Raised by `verify` when a delivery must be rejected; the message says why."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body,
                    hashlib.sha256).hexdigest()


def sign(secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    """The Gateway-Signature value for `body` sent at `timestamp`."""
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in secrets)])


def verify(header: str, body: bytes, secrets: Iterable[str], *,
           tolerance: int = DEFAULT_TOLERANCE, now: float | None = None) -> int:
    """The delivery's timestamp if `header` signs `body` with one of `secrets` within
    `tolerance` seconds of `now`; SignatureError otherwise."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("no timestamp or no v1 signature in the header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance: a replayed or delayed delivery")
    for secret in secrets:
        expected = _mac(secret, timestamp, body)
        if any(hmac.compare_digest(expected, s) for s in signatures):
            return timestamp
    raise SignatureError("no signature matches: wrong secret or altered body")
