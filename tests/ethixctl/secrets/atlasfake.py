"""A wire-level fake of the Atlas Admin API v2 database-user endpoints (a real HTTP server in a thread).

It checks what Atlas checks at the protocol level: the versioned media type, HTTP Digest (RFC 7616,
MD5, qop=auth) with the API key, or a bearer token from ``POST /api/oauth/token`` (client credentials
with HTTP Basic). Users live in memory; passwords are kept only to check what the client sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from tests.httpserver import serve

MEDIA_TYPE = "application/vnd.atlas.2023-01-01+json"
REALM = "MMS Public API"


@dataclass
class FakeAtlas:
    url: str = ""
    public_key: str = "pubkey"
    private_key: str = "private-key-value"
    client_id: str = "mdb_sa_id_1"
    client_secret: str = "mdb_sa_sk_secret"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    nonces: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_next: int = 0  # answer the next N requests with 503


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@contextmanager
def fake_atlas() -> Iterator[FakeAtlas]:
    atlas = FakeAtlas()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", MEDIA_TYPE)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _digest_ok(self) -> bool:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Digest "):
                return False
            fields = dict(re.findall(r'(\w+)="?([^",]+)"?', header[7:]))
            if fields.get("username") != atlas.public_key or fields.get("nonce") not in atlas.nonces:
                return False
            ha1 = _md5(f"{atlas.public_key}:{REALM}:{atlas.private_key}")
            ha2 = _md5(f"{self.command}:{fields.get('uri')}")
            expected = _md5(f"{ha1}:{fields['nonce']}:{fields.get('nc')}:{fields.get('cnonce')}:auth:{ha2}")
            return fields.get("response") == expected

        def _authorised(self) -> bool:
            bearer = self.headers.get("Authorization", "")
            if bearer.startswith("Bearer ") and bearer[7:] in atlas.tokens:
                return True
            if self._digest_ok():
                return True
            nonce = secrets.token_hex(8)
            atlas.nonces.add(nonce)
            challenge = f'Digest realm="{REALM}", domain="", nonce="{nonce}", algorithm=MD5, qop="auth"'
            self._body()
            self._send(401, {"error": 401, "errorCode": "UNAUTHORIZED"}, {"WWW-Authenticate": challenge})
            return False

        def _handle(self) -> None:
            with atlas.lock:
                atlas.requests.append((self.command, self.path))
                if atlas.fail_next:
                    atlas.fail_next -= 1
                    self._body()
                    self._send(503, {"errorCode": "SERVICE_UNAVAILABLE"})
                    return
            if self.path == "/api/oauth/token" and self.command == "POST":
                basic = base64.b64encode(f"{atlas.client_id}:{atlas.client_secret}".encode()).decode()
                body = self._body().decode()
                if (
                    self.headers.get("Authorization") != f"Basic {basic}"
                    or "grant_type=client_credentials" not in body
                ):
                    self._send(401, {"error": "invalid_client"})
                    return
                token = secrets.token_hex(16)
                atlas.tokens.add(token)
                self._send(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
                return
            if self.headers.get("Accept") != MEDIA_TYPE:
                self._send(406, {"errorCode": "INVALID_VERSION"})
                return
            if not self._authorised():
                return
            match = re.fullmatch(r"/api/atlas/v2/groups/(\w+)/databaseUsers(?:/admin/([^/]+))?", self.path)
            if match is None:
                self._send(404, {"errorCode": "RESOURCE_NOT_FOUND"})
                return
            username = unquote(match.group(2)) if match.group(2) else None
            with atlas.lock:
                if self.command == "POST" and username is None:
                    body = json.loads(self._body())
                    if body["username"] in atlas.users:
                        self._send(409, {"errorCode": "USER_ALREADY_EXISTS"})
                        return
                    atlas.users[body["username"]] = {**body, "groupId": match.group(1)}
                    self._send(201, {k: v for k, v in body.items() if k != "password"})
                elif username is not None and username not in atlas.users:
                    self._body()
                    self._send(404, {"errorCode": "USERNAME_NOT_FOUND"})
                elif self.command == "PATCH" and username is not None:
                    atlas.users[username].update(json.loads(self._body()))
                    self._send(200, {"username": username})
                elif self.command == "DELETE" and username is not None:
                    del atlas.users[username]
                    self._send(204)
                elif self.command == "GET" and username is not None:
                    self._send(200, {k: v for k, v in atlas.users[username].items() if k != "password"})
                else:
                    self._send(405, {"errorCode": "METHOD_NOT_ALLOWED"})

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

    with serve(Handler) as atlas.url:
        yield atlas
