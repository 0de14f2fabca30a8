"""Passwords (argon2id) and access tokens (JWT HS256 with a ``kid`` header, verified against a key set)."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from services.backend.settings import BackendSettings


@functools.lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> tuple[PasswordHasher, str]:
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)  # argon2id
    # Verified when the email is unknown, so a login takes as long for unknown users as for known ones.
    return hasher, hasher.hash("not-a-real-password")


def _hasher_for(settings: BackendSettings) -> tuple[PasswordHasher, str]:
    return _hasher(settings.password_hash_time_cost, settings.password_hash_memory_kib)


class HashingBusy(Exception):
    """Every password-hashing slot is taken: the request is refused (429) instead of queueing."""


_T = TypeVar("_T")


@functools.lru_cache(maxsize=4)
def _hashing_slots(concurrency: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(concurrency)


async def _bounded(settings: BackendSettings, work: Callable[[], _T]) -> _T:
    # argon2 costs ~0.1 s of CPU per call; unbounded, a login flood starves every other route. At most
    # one hash per core runs at a time, and the excess is refused at once rather than queued.
    slots = _hashing_slots(settings.password_hash_concurrency)
    if not slots.acquire(blocking=False):
        raise HashingBusy
    try:
        return await run_in_threadpool(work)
    finally:
        slots.release()


class InvalidToken(Exception):
    """The token is malformed, expired, signed with an unknown key or has a bad signature."""


async def hash_password(settings: BackendSettings, password: str) -> str:
    # argon2 takes a good part of a second of CPU: keep it off the event loop.
    hasher, _ = await run_in_threadpool(_hasher_for, settings)
    return await _bounded(settings, functools.partial(hasher.hash, password))


async def verify_password(settings: BackendSettings, password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        # The cost parameters are read from the stored hash, so changing the settings keeps old hashes valid.
        hasher, dummy = _hasher_for(settings)
        try:
            return hasher.verify(password_hash or dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    return await _bounded(settings, check)


def issue_token(settings: BackendSettings, user_id: str) -> str:
    kid = settings.jwt_active_kid
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + settings.access_token_ttl_seconds}
    key = settings.jwt_keys[kid].get_secret_value()
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": kid})


def verify_token(settings: BackendSettings, token: str) -> str:
    """The user id in a valid token; every key in the set verifies, so rotating keys logs nobody out."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        raise InvalidToken("malformed token") from None
    secret = settings.jwt_keys.get(kid) if isinstance(kid, str) else None
    if secret is None:
        raise InvalidToken("token signed with an unknown key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret.get_secret_value(), algorithms=["HS256"], options={"require": ["sub", "exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token expired") from None
    except jwt.PyJWTError:
        raise InvalidToken("invalid token") from None
    sub = claims["sub"]
    if not isinstance(sub, str):
        raise InvalidToken("invalid token subject")
    return sub
