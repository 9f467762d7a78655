"""The gateway's own token signing keys (ES256, P-256), their rotation and their JWKS.

Keys are PEM files in one directory (`GATEWAY_SIGNING_KEY_PATH`, default
`<data_dir>/signing-keys/`). The file whose name sorts last signs new tokens; every other
file is a retired key, still published in the JWKS and still accepted, so tokens signed
before a rotation stay valid until they expire. `rotate()` writes a new key (named by UTC
time, so it sorts last) and deletes retired keys older than the longest token lifetime.
`GATEWAY_SIGNING_KEY_PATH` may also name one PEM file: that key alone signs and is
published (rotation is then the operator's, by replacing the directory or the file).

On first start with an empty directory a key is generated, created with mode 0600 under
an flock (several worker processes start at once), and the log says where it is.
The `kid` is the RFC 7638 thumbprint of the public key, so it is stable and unique.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

log = structlog.get_logger("gateway.auth")

ALGORITHM = "ES256"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key pair, parsed once: the private half signs, the public half verifies."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey
    public_key: ec.EllipticCurvePublicKey
    path: Path

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url)."""
    jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = orjson.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")},
                             option=orjson.OPT_SORT_KEYS)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _load(path: Path) -> SigningKey:
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise ValueError(f"{path}: the signing key must be an EC P-256 private key (ES256)")
    public = private.public_key()
    return SigningKey(thumbprint(public), private, public, path)


def _write_new_key(directory: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # Named by creation time to the nanosecond, fixed width: name order is age order.
    ns = time.time_ns()
    while True:
        name = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 10**9))
        path = directory / f"{name}.{ns % 10**9:09d}Z.pem"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            ns += 1
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return path


class SigningKeys:
    """The active signing key plus the retired ones still published and accepted."""

    def __init__(self, path: Path):
        self.path = path
        self.active: SigningKey
        self.by_kid: dict[str, SigningKey] = {}
        self.load()

    def _files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        return sorted(self.path.glob("*.pem"))

    def load(self) -> None:
        """Read the keys; create the first one if there is none (the one-machine default)."""
        # A directory that already holds keys is only read: it may be a read-only mount
        # (a Kubernetes Secret shared by every replica).
        if not self.path.is_file() and not (self.path.is_dir() and self._files()):
            # The data directory holds secrets: owner only, parents included.
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path.mkdir(exist_ok=True, mode=0o700)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if not self._files():
                    created = _write_new_key(self.path)
                    log.warning("signing_key_created", path=str(created),
                                hint="keep it private; share the directory between replicas")
            finally:
                os.close(fd)
        keys = [_load(p) for p in self._files()]
        self.by_kid = {k.kid: k for k in keys}
        self.active = keys[-1]

    def signature(self) -> tuple[tuple[str, int], ...]:
        """Changes when a key file is added, removed or replaced (e.g. `gateway signing-key
        rotate` run beside a serving gateway)."""
        out = []
        for p in self._files():
            try:
                out.append((p.name, p.stat().st_mtime_ns))
            except FileNotFoundError:
                continue
        return tuple(out)

    def jwks(self) -> dict[str, Any]:
        """The public keys, active first, as a JWK Set (RFC 7517)."""
        keys = [self.active, *(k for k in self.by_kid.values() if k is not self.active)]
        return {"keys": [k.jwk() for k in keys]}

    def rotate(self, retire_after: float) -> SigningKey:
        """Make a new active key; drop retired keys unused for `retire_after` seconds."""
        if self.path.is_file():
            raise ValueError("GATEWAY_SIGNING_KEY_PATH names one file: rotate it by hand")
        # A key stopped signing when the key after it was written (its mtime).
        files = self._files()
        now = time.time()
        for older, newer in itertools.pairwise(files):
            if now - newer.stat().st_mtime > retire_after:
                older.unlink()
                log.info("signing_key_deleted", path=str(older))
        created = _write_new_key(self.path)
        log.info("signing_key_rotated", path=str(created))
        self.load()
        return self.active
