"""New secret values, generated the way the catalog says. Values only ever go to Secret Manager."""

from __future__ import annotations

import base64
import secrets as token
from pathlib import Path

from ethixctl.errors import UsageError
from ethixctl.secrets.catalog import Generator, Secret


def ed25519_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def random_text(length: int) -> bytes:
    return base64.urlsafe_b64encode(token.token_bytes(length)).rstrip(b"=")


def read_value_file(path: Path) -> bytes:
    """An operator-supplied value (a reissued webhook URL): from a file, never from argv."""
    try:
        value = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(f"--value-file {path}: cannot read ({exc.strerror})") from None
    if not value:
        raise UsageError(f"--value-file {path}: the file is empty")
    return value


def new_value(secret: Secret, value_file: Path | None = None) -> bytes:
    """A fresh value for ``secret`` (database users are created by the Atlas rotation instead)."""
    if value_file is not None:
        if secret.generate is not Generator.MANUAL:
            raise UsageError(
                f"{secret.id} is generated ({secret.generate.value}); --value-file is for manual secrets"
            )
        return read_value_file(value_file)
    if secret.generate is Generator.ED25519:
        return ed25519_pem()
    if secret.generate is Generator.RANDOM:
        assert secret.bytes is not None  # the catalog requires it
        return random_text(secret.bytes)
    if secret.generate is Generator.MANUAL:
        raise UsageError(f"{secret.id} is supplied by a person: give the new value with --value-file PATH")
    raise UsageError(f"{secret.id}: {secret.generate.value} values are created by the Atlas rotation")
