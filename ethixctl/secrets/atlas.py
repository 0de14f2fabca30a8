"""MongoDB Atlas Admin API v2: the database users behind the ``database-url`` secret.

Authentication is the Atlas adapter's (:func:`ethixctl.adapters.atlas.credentials_from_environment`):
an HTTP Digest API key or a service account's OAuth token. ``ETHIXCTL_ATLAS_BASE_URL`` points elsewhere
than https://cloud.mongodb.com (the tests' wire-level fake). Passwords and keys never appear in
messages or exceptions.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ethixctl.adapters.atlas import ACCEPT, PRODUCTION_URL, credentials_from_environment
from ethixctl.errors import EthixError, PlatformUnavailable
from ethixctl.secrets.catalog import Atlas

AUTH_DATABASE = "admin"
PASSWORD_BYTES = 24


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


def database_url(atlas: Atlas, username: str, password: str) -> str:
    return (
        f"mongodb+srv://{quote(username, safe='')}:{quote(password, safe='')}@{atlas.host}/{atlas.database}"
        "?retryWrites=true&w=majority"
    )


def username_of(url: str) -> str | None:
    """The user in a MongoDB URL (never its password); None for URLs without credentials."""
    from urllib.parse import unquote

    user = urlsplit(url).username
    return unquote(user) if user else None


class AtlasUsers:
    def __init__(self, atlas: Atlas, base_url: str | None = None, timeout: float = 30.0):
        self.atlas = atlas
        self.base_url = (base_url or os.environ.get("ETHIXCTL_ATLAS_BASE_URL") or PRODUCTION_URL).rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            auth=credentials_from_environment(self.base_url),
            headers={"Accept": ACCEPT, "Content-Type": ACCEPT},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def _send(self, what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise PlatformUnavailable(
                f"Atlas: {what}: {self.base_url} unreachable ({type(exc).__name__})"
            ) from None
        if response.status_code >= 500:
            raise PlatformUnavailable(f"Atlas: {what}: HTTP {response.status_code}")
        if response.status_code in (401, 403):
            raise EthixError(
                f"Atlas: {what}: HTTP {response.status_code} ({_error_code(response)})",
                hint="check the Atlas credentials and that they may manage database users in this project",
            )
        return response

    def _users(self) -> str:
        return f"/api/atlas/v2/groups/{self.atlas.group_id}/databaseUsers"

    def _user(self, username: str) -> str:
        return f"{self._users()}/{AUTH_DATABASE}/{quote(username, safe='')}"

    def upsert(self, username: str, password: str) -> str:
        """Create the user, or (resuming after a crash) give the existing one this password. Returns
        "created" or "updated"."""
        body = {
            "databaseName": AUTH_DATABASE,
            "groupId": self.atlas.group_id,
            "username": username,
            "password": password,
            "roles": [{"databaseName": self.atlas.database, "roleName": self.atlas.role}],
            "scopes": [{"name": self.atlas.cluster, "type": "CLUSTER"}],
        }
        created = self._send(f"create database user {username}", "POST", self._users(), json=body)
        if created.status_code in (200, 201):
            return "created"
        if created.status_code != 409:
            raise EthixError(
                f"Atlas: create database user {username}: HTTP {created.status_code} ({_error_code(created)})"
            )
        updated = self._send(
            f"update database user {username}", "PATCH", self._user(username), json={"password": password}
        )
        if updated.status_code != 200:
            raise EthixError(
                f"Atlas: update database user {username}: HTTP {updated.status_code} ({_error_code(updated)})"
            )
        return "updated"

    def delete(self, username: str) -> bool:
        """Delete the user; False when it was already gone (a resumed run)."""
        response = self._send(f"delete database user {username}", "DELETE", self._user(username))
        if response.status_code in (200, 202, 204):
            return True
        if response.status_code == 404:
            return False
        raise EthixError(
            f"Atlas: delete database user {username}: HTTP {response.status_code} ({_error_code(response)})"
        )

    def exists(self, username: str) -> bool:
        response = self._send(f"get database user {username}", "GET", self._user(username))
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise EthixError(
                f"Atlas: get database user {username}: HTTP {response.status_code} ({_error_code(response)})"
            )
        return True


def _error_code(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body.get("errorCode") or body.get("reason") or "no detail")
    except ValueError:
        return "no detail"
