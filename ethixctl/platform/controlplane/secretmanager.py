"""Secret Manager v1 subset: secrets, versions (ENABLED/DISABLED/DESTROYED), `latest`, aliases.

Payloads are encrypted at rest with Fernet; the key lives next to the state, readable by the owner only.
Nothing here logs or formats a payload: error messages name versions, never values.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import google_crc32c
from cryptography.fernet import Fernet
from google.cloud import secretmanager_v1 as sm

from ethixctl.platform.controlplane import apierror
from ethixctl.platform.controlplane.store import message_from_dict, message_to_dict, read_json, write_json

SECRET_ID = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
MAX_PAYLOAD = 64 * 1024
State = sm.SecretVersion.State


def _now() -> datetime:
    return datetime.now(UTC)


def _etag() -> str:
    return f'"{uuid.uuid4().hex[:16]}"'


def load_or_create_key(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class SecretManager:
    def __init__(self, state_path: Path, key_path: Path):
        self._path = state_path
        self._fernet = Fernet(load_or_create_key(key_path))
        self._lock = threading.RLock()
        # secret name -> {"secret": Secret, "versions": {int: [SecretVersion, token | None]}, "next": int}
        self._secrets: dict[str, dict[str, Any]] = {}
        self._load()

    # persistence -------------------------------------------------------------------------------
    def _load(self) -> None:
        data = read_json(self._path) or {}
        for name, entry in data.get("secrets", {}).items():
            versions = {
                int(number): [message_from_dict(sm.SecretVersion, v["version"]), v["data"]]
                for number, v in entry["versions"].items()
            }
            self._secrets[name] = {
                "secret": message_from_dict(sm.Secret, entry["secret"]),
                "versions": versions,
                "next": entry["next"],
            }

    def _save(self) -> None:
        data = {
            "secrets": {
                name: {
                    "secret": message_to_dict(entry["secret"]),
                    "versions": {
                        str(n): {"version": message_to_dict(v), "data": token}
                        for n, (v, token) in entry["versions"].items()
                    },
                    "next": entry["next"],
                }
                for name, entry in self._secrets.items()
            }
        }
        write_json(self._path, data)

    # secrets -----------------------------------------------------------------------------------
    def _entry(self, name: str) -> dict[str, Any]:
        entry = self._secrets.get(name)
        if entry is None:
            raise apierror.not_found(f"Secret [{name}] not found.")
        return entry

    def create_secret(self, parent: str, secret_id: str, body: sm.Secret) -> sm.Secret:
        if not SECRET_ID.match(secret_id or ""):
            raise apierror.invalid_argument(
                f"invalid secret id {secret_id!r}: use 1-255 letters, digits, '-' or '_'"
            )
        name = f"{parent}/secrets/{secret_id}"
        with self._lock:
            if name in self._secrets:
                raise apierror.already_exists(f"Secret [{name}] already exists.")
            secret = sm.Secret(
                name=name,
                labels=dict(body.labels),
                annotations=dict(body.annotations),
                replication=sm.Replication(automatic=sm.Replication.Automatic()),
                create_time=_now(),
                etag=_etag(),
            )
            self._secrets[name] = {"secret": secret, "versions": {}, "next": 1}
            self._save()
            return secret

    def get_secret(self, name: str) -> sm.Secret:
        with self._lock:
            return self._entry(name)["secret"]

    def list_secrets(self, parent: str) -> list[sm.Secret]:
        with self._lock:
            return [e["secret"] for n, e in sorted(self._secrets.items()) if n.startswith(parent + "/")]

    def delete_secret(self, name: str) -> None:
        with self._lock:
            self._entry(name)
            del self._secrets[name]
            self._save()

    def update_secret(self, name: str, body: sm.Secret, update_mask: list[str]) -> sm.Secret:
        if not update_mask:
            raise apierror.invalid_argument("updateMask is required (e.g. versionAliases)")
        with self._lock:
            entry = self._entry(name)
            secret: sm.Secret = entry["secret"]
            if body.etag and body.etag != secret.etag:
                raise apierror.failed_precondition(
                    f"etag {body.etag} does not match Secret [{name}]: it changed since it was read"
                )
            for field in update_mask:
                if field in ("versionAliases", "version_aliases"):
                    aliases = dict(body.version_aliases)
                    for alias, number in aliases.items():
                        self._check_alias(name, entry, alias, int(number))
                    secret.version_aliases = aliases
                elif field == "labels":
                    secret.labels = dict(body.labels)
                elif field == "annotations":
                    secret.annotations = dict(body.annotations)
                else:
                    raise apierror.invalid_argument(f"updating {field!r} is not supported")
            secret.etag = _etag()
            self._save()
            return secret

    @staticmethod
    def _check_alias(name: str, entry: dict[str, Any], alias: str, number: int) -> None:
        if not ALIAS.match(alias) or alias == "latest" or alias.isdigit():
            raise apierror.invalid_argument(
                f"invalid alias {alias!r}: use letters, digits, '-' or '_', not 'latest' or a number"
            )
        version = entry["versions"].get(number)
        if version is None:
            raise apierror.invalid_argument(f"alias {alias!r}: version {number} of [{name}] does not exist")
        if version[0].state == State.DESTROYED:
            raise apierror.failed_precondition(f"alias {alias!r}: version {number} of [{name}] is destroyed")

    # versions ----------------------------------------------------------------------------------
    def add_version(self, parent: str, payload: sm.SecretPayload) -> sm.SecretVersion:
        data = bytes(payload.data)
        if len(data) > MAX_PAYLOAD:
            raise apierror.invalid_argument(f"payload is {len(data)} bytes; the limit is {MAX_PAYLOAD}")
        checksummed = "data_crc32c" in payload
        if checksummed and int(payload.data_crc32c) != google_crc32c.value(data):
            raise apierror.invalid_argument(
                "payload data_crc32c does not match the data (corrupted in transit)"
            )
        with self._lock:
            entry = self._entry(parent)
            number = entry["next"]
            entry["next"] = number + 1
            version = sm.SecretVersion(
                name=f"{parent}/versions/{number}",
                create_time=_now(),
                state=State.ENABLED,
                etag=_etag(),
                client_specified_payload_checksum=checksummed,
            )
            entry["versions"][number] = [version, self._fernet.encrypt(data).decode()]
            self._save()
            return version

    def _resolve(self, name: str) -> tuple[dict[str, Any], int]:
        secret_name, sep, ref = name.partition("/versions/")
        if not sep or not ref:
            raise apierror.invalid_argument(f"invalid secret version name {name!r}")
        entry = self._entry(secret_name)
        if ref == "latest":
            if not entry["versions"]:
                raise apierror.not_found(f"Secret [{secret_name}] has no versions.")
            return entry, max(entry["versions"])
        if ref.isdigit():
            number = int(ref)
        elif ref in entry["secret"].version_aliases:
            number = int(entry["secret"].version_aliases[ref])
        else:
            raise apierror.not_found(f"Secret Version [{name}] not found.")
        if number not in entry["versions"]:
            raise apierror.not_found(f"Secret Version [{secret_name}/versions/{number}] not found.")
        return entry, number

    def get_version(self, name: str) -> sm.SecretVersion:
        with self._lock:
            entry, number = self._resolve(name)
            return entry["versions"][number][0]

    def list_versions(self, parent: str) -> list[sm.SecretVersion]:
        with self._lock:
            entry = self._entry(parent)
            return [entry["versions"][n][0] for n in sorted(entry["versions"], reverse=True)]

    def access(self, name: str) -> sm.AccessSecretVersionResponse:
        with self._lock:
            entry, number = self._resolve(name)
            version, token = entry["versions"][number]
            if version.state != State.ENABLED or token is None:
                raise apierror.failed_precondition(
                    f"Secret Version [{version.name}] is in {State(version.state).name} state."
                )
            data = self._fernet.decrypt(token.encode())
        return sm.AccessSecretVersionResponse(
            name=version.name, payload=sm.SecretPayload(data=data, data_crc32c=google_crc32c.value(data))
        )

    def change_state(self, name: str, action: str, etag: str) -> sm.SecretVersion:
        with self._lock:
            entry, number = self._resolve(name)
            record = entry["versions"][number]
            version: sm.SecretVersion = record[0]
            if etag and etag != version.etag:
                raise apierror.aborted(f"etag {etag} does not match Secret Version [{version.name}]")
            if version.state == State.DESTROYED and action != "destroy":
                raise apierror.failed_precondition(f"Secret Version [{version.name}] is destroyed.")
            if action == "enable":
                version.state = State(State.ENABLED)
            elif action == "disable":
                version.state = State(State.DISABLED)
            else:
                version.state = State(State.DESTROYED)
                version.destroy_time = _now()
                record[1] = None
            version.etag = _etag()
            self._save()
            return version

    def resolve_value(self, project: str, secret: str, version: str) -> str:
        """The plain value of a Cloud Run `secret_key_ref`, for the runtime's environment."""
        name = secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"
        payload = self.access(f"{name}/versions/{version or 'latest'}").payload
        try:
            return bytes(payload.data).decode()
        except UnicodeDecodeError:
            raise apierror.failed_precondition(
                f"[{name}] is not UTF-8 text; it cannot be an env var"
            ) from None

    def check_exists(self, project: str, secret: str) -> None:
        name = secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"
        with self._lock:
            self._entry(name)
