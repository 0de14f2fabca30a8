"""Server-side sessions: a refresh token bound to a session record in the document store.

A refresh token is ``SESSION_ID.SECRET``; the store keeps only an HMAC of it under the session key
(``refresh_seal``), never the token. Each refresh replaces the secret (the old token stops working) and
re-seals with the current session key. A token whose session exists but whose secret does not match is
a replayed, already-used token: the session is revoked, as OAuth 2.0 security practice advises.

Every access token names its session (``sid``) and every request checks it, so revoking a session,
or all of them (``revoke_all``, used by an emergency key rotation), takes effect at once.

Collection ``sessions``: ``_id``, ``user_id``, ``created_at``, ``refreshed_at`` (ISO), ``expires_at``
(Unix seconds), ``refresh_seal`` (hex), ``revoked_at`` (ISO or null), ``revoked_reason``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from services.common.docstore import DocStore, new_id

COLLECTION = "sessions"


class InvalidSession(Exception):
    """The refresh token or session is unknown, expired, revoked, or was already used."""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _seal(key: bytes, token: str) -> str:
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def _opens(session_keys: tuple[bytes, ...], token: str, seal: str) -> bool:
    return any(hmac.compare_digest(_seal(key, token), seal) for key in session_keys)


def create(
    store: DocStore, session_keys: tuple[bytes, ...], user_id: str, ttl_seconds: int
) -> tuple[str, str]:
    """A new session for ``user_id``; returns (session id, refresh token)."""
    session_id = new_id()
    token = f"{session_id}.{secrets.token_urlsafe(32)}"
    now = _now_iso()
    store[COLLECTION].insert_one(
        {
            "_id": session_id,
            "user_id": user_id,
            "created_at": now,
            "refreshed_at": now,
            "expires_at": time.time() + ttl_seconds,
            "refresh_seal": _seal(session_keys[0], token),
            "revoked_at": None,
            "revoked_reason": None,
        }
    )
    return session_id, token


def _usable(session: dict[str, Any] | None) -> dict[str, Any]:
    if session is None:
        raise InvalidSession("unknown session")
    if session["revoked_at"] is not None:
        raise InvalidSession("session revoked")
    if session["expires_at"] <= time.time():
        raise InvalidSession("session expired")
    return session


def refresh(store: DocStore, session_keys: tuple[bytes, ...], token: str) -> tuple[dict[str, Any], str]:
    """Exchange a refresh token for a new one; returns (session, new refresh token)."""
    session_id, dot, secret = token.partition(".")
    if not dot or not session_id or not secret:
        raise InvalidSession("malformed refresh token")
    session = _usable(store[COLLECTION].find_one({"_id": session_id}))
    if not _opens(session_keys, token, session["refresh_seal"]):
        revoke(store, session_id, "a refresh token was used twice")
        raise InvalidSession("refresh token already used; the session is revoked")
    new_token = f"{session_id}.{secrets.token_urlsafe(32)}"
    # Conditional on the old seal: of two refreshes racing with the same token, only one wins.
    updated = store[COLLECTION].update_one(
        {"_id": session_id, "refresh_seal": session["refresh_seal"], "revoked_at": None},
        {"$set": {"refresh_seal": _seal(session_keys[0], new_token), "refreshed_at": _now_iso()}},
    )
    if updated != 1:
        raise InvalidSession("refresh token already used")
    return session, new_token


def check(session: dict[str, Any] | None, user_id: str) -> None:
    """Raise unless the session (as read from the store, by the token's ``sid``) exists, belongs to
    ``user_id``, and is neither revoked nor expired."""
    session = _usable(session)
    if session["user_id"] != user_id:
        raise InvalidSession("session of another user")


def revoke(store: DocStore, session_id: str, reason: str) -> bool:
    updated = store[COLLECTION].update_one(
        {"_id": session_id, "revoked_at": None},
        {"$set": {"revoked_at": _now_iso(), "revoked_reason": reason}},
    )
    return updated == 1


def revoke_all(
    store: DocStore, reason: str, user_id: str | None = None, created_before: str | None = None
) -> int:
    """Revoke every active session (of one user, or of everyone; only those created before an ISO
    time when given, so users who already logged in again keep their new session); returns how many."""
    query: dict[str, Any] = {"revoked_at": None}
    if user_id is not None:
        query["user_id"] = user_id
    now = time.time()
    active = [
        s["_id"]
        for s in store[COLLECTION].find(query)
        if s["expires_at"] > now and (created_before is None or s["created_at"] < created_before)
    ]
    return sum(revoke(store, session_id, reason) for session_id in active)
