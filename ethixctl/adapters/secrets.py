"""Secret Manager v1 through google-cloud-secret-manager (REST transport).

With `endpoint` set it talks to the local control plane with anonymous credentials; with
`endpoint=None` to Google with application default credentials. Secret values only pass through
`add_version` and `access`; they are never logged, put in an error message or kept on this object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from ethixctl.adapters import _google
from ethixctl.errors import EthixError, UsageError

T = TypeVar("T")


@dataclass
class SecretVersionInfo:
    secret: str
    version: str
    state: str  # ENABLED | DISABLED | DESTROYED
    create_time: datetime
    aliases: list[str]


# Per call: a hung Secret Manager (or local control plane) must end a rotation with "unreachable",
# not hold it forever. The client library's own default is 60 s with retries.
LOCAL_TIMEOUT = 10.0
GOOGLE_TIMEOUT = 30.0


class SecretManager:
    def __init__(self, project: str, endpoint: str | None = None):
        from google.cloud import secretmanager_v1

        self.project = project
        self.endpoint = endpoint
        self.timeout = LOCAL_TIMEOUT if endpoint else GOOGLE_TIMEOUT
        self._sm = secretmanager_v1
        self._client = secretmanager_v1.SecretManagerServiceClient(**_google.client_kwargs(endpoint))

    def _secret(self, name: str) -> str:
        return f"projects/{self.project}/secrets/{name}"

    def _call(self, what: str, fn: Callable[[], T], unknown: str | None = None) -> T:
        return _google.call(what, fn, endpoint=self.endpoint, api="Secret Manager", unknown=unknown)

    def create_secret(self, name: str, exist_ok: bool = False) -> None:
        from google.api_core import exceptions as gexc

        secret = self._sm.Secret(replication=self._sm.Replication(automatic=self._sm.Replication.Automatic()))

        def create() -> None:
            try:
                self._client.create_secret(
                    parent=f"projects/{self.project}", secret_id=name, secret=secret, timeout=self.timeout
                )
            except gexc.Conflict:  # over REST, ALREADY_EXISTS arrives as HTTP 409
                if not exist_ok:
                    raise

        self._call(f"create secret {name}", create)

    def list_secrets(self) -> list[str]:
        secrets = self._call(
            "list secrets",
            lambda: list(self._client.list_secrets(parent=f"projects/{self.project}", timeout=self.timeout)),
        )
        return [s.name.rsplit("/", 1)[-1] for s in secrets]

    def add_version(self, name: str, value: bytes) -> str:
        """Store `value` as the newest version; returns its number. The checksum guards the transfer."""
        import google_crc32c

        payload = self._sm.SecretPayload(data=value, data_crc32c=google_crc32c.value(value))
        version = self._call(
            f"add a version to secret {name}",
            lambda: self._client.add_secret_version(
                parent=self._secret(name), payload=payload, timeout=self.timeout
            ),
            unknown=f"unknown secret {name!r}",
        )
        return str(version.name.rsplit("/", 1)[-1])

    def access(self, name: str, version: str = "latest") -> bytes:
        """The value of `version` (a number, `latest` or an alias); only ENABLED versions can be read."""
        import google_crc32c

        response = self._call(
            f"access secret {name} version {version}",
            lambda: self._client.access_secret_version(
                name=f"{self._secret(name)}/versions/{version}", timeout=self.timeout
            ),
            unknown=f"unknown secret or version {name}/{version}",
        )
        data = bytes(response.payload.data)
        if "data_crc32c" in response.payload and google_crc32c.value(data) != response.payload.data_crc32c:
            raise EthixError(f"secret {name} version {version}: checksum mismatch, the value was corrupted")
        return data

    def list_versions(self, name: str) -> list[SecretVersionInfo]:
        secret = self._call(
            f"get secret {name}",
            lambda: self._client.get_secret(name=self._secret(name), timeout=self.timeout),
            unknown=f"unknown secret {name!r}",
        )
        versions = self._call(
            f"list versions of secret {name}",
            lambda: list(self._client.list_secret_versions(parent=self._secret(name), timeout=self.timeout)),
        )
        aliases: dict[str, list[str]] = {}
        for alias, number in secret.version_aliases.items():
            aliases.setdefault(str(number), []).append(alias)
        return [self._info(name, v, aliases) for v in versions]

    def _info(self, name: str, raw: Any, aliases: dict[str, list[str]]) -> SecretVersionInfo:
        number = raw.name.rsplit("/", 1)[-1]
        return SecretVersionInfo(
            secret=name,
            version=number,
            state=self._sm.SecretVersion.State(raw.state).name,
            create_time=raw.create_time,
            aliases=sorted(aliases.get(number, [])),
        )

    def _change(self, action: str, name: str, version: str) -> SecretVersionInfo:
        method = getattr(self._client, f"{action}_secret_version")
        raw = self._call(
            f"{action} secret {name} version {version}",
            lambda: method(name=f"{self._secret(name)}/versions/{version}", timeout=self.timeout),
            unknown=f"unknown secret or version {name}/{version}",
        )
        return self._info(name, raw, {})

    def disable_version(self, name: str, version: str) -> SecretVersionInfo:
        return self._change("disable", name, version)

    def enable_version(self, name: str, version: str) -> SecretVersionInfo:
        return self._change("enable", name, version)

    def destroy_version(self, name: str, version: str) -> SecretVersionInfo:
        """Irreversible: the value is erased; the version stays listed as DESTROYED."""
        return self._change("destroy", name, version)

    def aliases(self, name: str) -> dict[str, str]:
        """alias -> version number."""
        secret = self._call(
            f"get secret {name}",
            lambda: self._client.get_secret(name=self._secret(name), timeout=self.timeout),
            unknown=f"unknown secret {name!r}",
        )
        return {alias: str(number) for alias, number in secret.version_aliases.items()}

    def set_alias(self, name: str, alias: str, version: str | None) -> None:
        """Point `alias` at `version` (a number); None removes the alias."""
        self.set_aliases(name, {alias: version})

    def set_aliases(self, name: str, changes: dict[str, str | None]) -> None:
        """Move several aliases in ONE update (a version number, or None to remove the alias).

        Guarded by the secret's etag: a concurrent change makes the update fail instead of being lost.
        """
        secret = self._call(
            f"get secret {name}",
            lambda: self._client.get_secret(name=self._secret(name), timeout=self.timeout),
            unknown=f"unknown secret {name!r}",
        )
        aliases = {k: int(v) for k, v in secret.version_aliases.items()}
        for alias, version in changes.items():
            if version is None:
                aliases.pop(alias, None)
            elif version.isdigit():
                aliases[alias] = int(version)
            else:
                raise UsageError(f"alias {alias!r}: give a version number, not {version!r}")
        secret.version_aliases = aliases
        what = ", ".join(f"{alias}={version or 'none'}" for alias, version in changes.items())
        self._call(
            f"set aliases {what} of secret {name}",
            lambda: self._client.update_secret(
                secret=secret, update_mask={"paths": ["version_aliases"]}, timeout=self.timeout
            ),
        )
