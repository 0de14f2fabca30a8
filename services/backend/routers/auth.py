"""Register, log in, refresh and log out (server-side sessions, see services/backend/sessions.py)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from starlette.concurrency import run_in_threadpool

from services.backend import sessions
from services.backend.deps import UNAUTHORIZED, ClientAddress, CurrentCaller, Keys, Settings, Store, Throttle
from services.backend.keys import KeyRing
from services.backend.runner import now_iso
from services.backend.schemas import (
    Credentials,
    LogoutIn,
    Problem,
    RefreshIn,
    Registration,
    TokenOut,
    UserOut,
)
from services.backend.security import hash_password, issue_token, verify_password
from services.backend.settings import BackendSettings
from services.backend.throttle import account_key, loggable, normalized_email
from services.common.docstore import DuplicateKeyError, new_id

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
log = logging.getLogger(__name__)
REGISTER_REFUSED: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Email already registered"},
    429: {
        "model": Problem,
        "description": "Hashing busy, or this client is blocked after failed logins; see Retry-After",
    },
}


@router.post(
    "/register", status_code=status.HTTP_201_CREATED, response_model=UserOut, responses=REGISTER_REFUSED
)
async def register(
    body: Registration, store: Store, settings: Settings, throttle: Throttle, client: ClientAddress
) -> UserOut:
    email = normalized_email(body.email)
    # A 409 tells whether an email has an account: it costs the client a failure like a wrong password,
    # so probing emails here is throttled like guessing them at login. The hash comes first either way.
    await throttle.check(None, client)
    password_hash = await hash_password(settings, body.password)
    user = {"_id": new_id(), "email": email, "password_hash": password_hash, "created_at": now_iso()}
    try:
        await run_in_threadpool(store["users"].insert_one, user)
    except DuplicateKeyError:
        await run_in_threadpool(throttle.failed, None, client)
        log.warning(
            "registration for a taken email",
            extra={"security_event": "register_conflict", "client": client},
        )
        raise HTTPException(status.HTTP_409_CONFLICT, "email already registered") from None
    return UserOut(id=user["_id"], email=email)


def _tokens(
    keys: KeyRing, settings: BackendSettings, user_id: str, session_id: str, refresh_token: str
) -> TokenOut:
    return TokenOut(
        access_token=issue_token(keys, settings, user_id, session_id),
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh_token,
        refresh_expires_in=settings.refresh_token_ttl_seconds,
    )


THROTTLED = {
    "model": Problem,
    "description": "Too many failed logins for this account or client, or hashing busy; see Retry-After",
}


@router.post("/login", response_model=TokenOut, responses={401: {"model": Problem}, 429: THROTTLED})
async def login(
    body: Credentials,
    store: Store,
    settings: Settings,
    keys: Keys,
    throttle: Throttle,
    client: ClientAddress,
) -> TokenOut:
    email = normalized_email(body.email)
    # Before hashing: a blocked attempt costs no CPU, and the same for unknown and known emails.
    await throttle.check(email, client)
    user = await run_in_threadpool(store["users"].find_one, {"email": email})
    if (
        not await verify_password(settings, user["password_hash"] if user else None, body.password)
        or user is None
    ):
        await run_in_threadpool(throttle.failed, email, client)
        # ASVS 7.2.1: every authentication decision is logged; the account only as its counter's hash.
        account = loggable(account_key(email))
        log.warning(
            "login failed for %s from %s",
            account,
            client,
            extra={"security_event": "login_failed", "account": account, "client": client},
        )
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong email or password", headers={"WWW-Authenticate": "Bearer"}
        )
    await run_in_threadpool(throttle.succeeded, email)
    log.info(
        "login succeeded for user %s from %s",
        user["_id"],
        client,
        extra={"security_event": "login_succeeded", "user_id": user["_id"], "client": client},
    )
    session_id, refresh_token = await run_in_threadpool(
        sessions.create, store, keys.session_keys, user["_id"], settings.refresh_token_ttl_seconds
    )
    return _tokens(keys, settings, user["_id"], session_id, refresh_token)


@router.post("/refresh", response_model=TokenOut, responses={401: {"model": Problem}})
async def refresh(
    body: RefreshIn, store: Store, settings: Settings, keys: Keys, client: ClientAddress
) -> TokenOut:
    """A new access token and a new refresh token; the one sent stops working."""
    try:
        session, refresh_token = await run_in_threadpool(
            sessions.refresh, store, keys.session_keys, body.refresh_token
        )
    except sessions.InvalidSession as exc:
        # An authentication decision too (a reused token revokes its session): logged, never the token.
        log.warning(
            "refresh refused from %s: %s",
            client,
            exc,
            extra={"security_event": "refresh_refused", "client": client},
        )
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc)) from None
    return _tokens(keys, settings, session["user_id"], session["_id"], refresh_token)


@router.post(
    "/logout", status_code=status.HTTP_204_NO_CONTENT, response_class=Response, responses=UNAUTHORIZED
)
async def logout(caller: CurrentCaller, store: Store, body: LogoutIn | None = None) -> Response:
    """End this session (``{"all": true}``: every session of the user); its tokens stop working at once."""
    if body is not None and body.all:
        await run_in_threadpool(sessions.revoke_all, store, "logout (all sessions)", caller.user["_id"])
    else:
        await run_in_threadpool(sessions.revoke, store, caller.session_id, "logout")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
