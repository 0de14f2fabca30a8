"""The backend's keys, built from the secrets it loaded at runtime (services/common/secrets.py).

Access tokens are signed with the Ed25519 key of the signing secret's ``current`` version and carry its
``kid`` (the RFC 7638 thumbprint of the public key, so any verifier can recompute it). The public
halves of ``current``, ``next`` and ``previous`` verify, and are published as a JWKS. Refresh tokens
are sealed with the session key: ``current`` seals, every loaded version opens.

Development without Secret Manager uses fixed development keys; production refuses to start without
Secret Manager (settings), so these can never sign a production token.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.common.secrets import ALIASES, Snapshot, StaticReader, Version

DEV_JWT_SECRET_NAME = "jwt-signing-key"
DEV_SESSION_SECRET_NAME = "session-key"
_DEV_SEED = hashlib.sha256(b"ethix-development-jwt-key-not-for-production").digest()
DEV_SESSION_KEY = b"ethix-development-session-key-not-for-production"


class UnusableKey(ValueError):
    """A loaded secret version is not a usable key; the message names the secret and version only."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def dev_signing_pem() -> bytes:
    return private_key_pem(Ed25519PrivateKey.from_private_bytes(_DEV_SEED))


def dev_reader() -> StaticReader:
    return StaticReader(
        {
            DEV_JWT_SECRET_NAME: {"current": Version("1", dev_signing_pem())},
            DEV_SESSION_SECRET_NAME: {"current": Version("1", DEV_SESSION_KEY)},
        }
    )


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as an RFC 8037 OKP JWK with its RFC 7638 thumbprint as ``kid``."""
    x = _b64url(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    members = {"crv": "Ed25519", "kty": "OKP", "x": x}  # the thumbprint's required members, sorted
    kid = _b64url(hashlib.sha256(json.dumps(members, separators=(",", ":")).encode()).digest())
    return {**members, "kid": kid, "use": "sig", "alg": "EdDSA"}


def _load_private(secret: str, version: Version) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(version.value, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise UnusableKey(f"{secret} version {version.number} is not an Ed25519 private key (PKCS#8 PEM)")
    return key


@dataclass(frozen=True)
class KeyRing:
    signing_kid: str
    signing_key: Ed25519PrivateKey = field(repr=False)
    verifying: dict[str, Ed25519PublicKey] = field(repr=False)
    jwks: dict[str, Any]
    # The session key's versions, current first: current seals, all open.
    session_keys: tuple[bytes, ...] = field(repr=False)
    versions: dict[str, dict[str, str]]

    @classmethod
    def build(cls, snapshot: Snapshot, jwt_secret: str, session_secret: str) -> KeyRing:
        signing = snapshot.get(jwt_secret, {})
        sessions = snapshot.get(session_secret, {})
        if "current" not in signing or "current" not in sessions:
            raise UnusableKey("the signing and session keys need a current version")
        private = {alias: _load_private(jwt_secret, version) for alias, version in signing.items()}
        jwks: list[dict[str, str]] = []
        verifying: dict[str, Ed25519PublicKey] = {}
        for alias in ALIASES:
            if alias not in private:
                continue
            public = private[alias].public_key()
            jwk = public_jwk(public)
            if jwk["kid"] not in verifying:
                verifying[jwk["kid"]] = public
                jwks.append(jwk)
        session_keys = tuple(sessions[alias].value for alias in ALIASES if alias in sessions)
        return cls(
            signing_kid=public_jwk(private["current"].public_key())["kid"],
            signing_key=private["current"],
            verifying=verifying,
            jwks={"keys": jwks},
            session_keys=tuple(dict.fromkeys(session_keys)),
            versions={
                jwt_secret: {alias: v.number for alias, v in signing.items()},
                session_secret: {alias: v.number for alias, v in sessions.items()},
            },
        )
