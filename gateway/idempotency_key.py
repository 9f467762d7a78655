"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): parsing, fingerprints and
the store key, pure functions.

The header's value is a Structured Field string (`Idempotency-Key: "8e03978e-..."`); a
bare token is accepted too, as most clients send one. The store key is scoped by the
tenant by construction (its first component), and hashes the client's key so any
printable value makes a short, safe Redis key. The fingerprint covers what makes two
requests "the same": whether it was asynchronous, method, path, query and body bytes;
the same key with another fingerprint is refused (422).
"""

from __future__ import annotations

import hashlib
import re

from gateway.errors import UnprocessableContent

_SANE = re.compile(r"[\x20-\x7e]{1,255}\Z")


def parse_key(raw: bytes) -> str:
    """The key the client sent, or UnprocessableContent for an unusable one."""
    text = raw.decode("latin-1").strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not text or not _SANE.match(text):
        raise UnprocessableContent(UnprocessableContent.KEY_MALFORMED)
    return text


def store_key(tenant: str, key: str) -> str:
    return f"{tenant}:{hashlib.sha256(key.encode()).hexdigest()}"


def fingerprint(asynchronous: bool, method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (b"async" if asynchronous else b"sync", method.encode(), path.encode(),
                 query):
        digest.update(part + b"\0")
    digest.update(body)
    return digest.hexdigest()
