"""Register and log in."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from services.backend.deps import ClientAddress, Settings, Store, Throttle
from services.backend.runner import now_iso
from services.backend.schemas import Credentials, Problem, TokenOut, UserOut
from services.backend.security import hash_password, issue_token, verify_password
from services.common.docstore import DuplicateKeyError, new_id

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
BUSY = {"model": Problem, "description": "Every password-hashing slot is busy; see Retry-After"}


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses={409: {"model": Problem, "description": "Email already registered"}, 429: BUSY},
)
async def register(body: Credentials, store: Store, settings: Settings) -> UserOut:
    email = body.email.strip().lower()
    password_hash = await hash_password(settings, body.password)
    user = {"_id": new_id(), "email": email, "password_hash": password_hash, "created_at": now_iso()}
    try:
        await run_in_threadpool(store["users"].insert_one, user)
    except DuplicateKeyError:
        raise HTTPException(status.HTTP_409_CONFLICT, "email already registered") from None
    return UserOut(id=user["_id"], email=email)


THROTTLED = {
    "model": Problem,
    "description": "Too many failed logins for this account or client, or hashing busy; see Retry-After",
}


@router.post("/login", response_model=TokenOut, responses={401: {"model": Problem}, 429: THROTTLED})
async def login(
    body: Credentials, store: Store, settings: Settings, throttle: Throttle, client: ClientAddress
) -> TokenOut:
    email = body.email.strip().lower()
    # Before hashing: a blocked attempt costs no CPU, and the same for unknown and known emails.
    await run_in_threadpool(throttle.check, email, client)
    user = await run_in_threadpool(store["users"].find_one, {"email": email})
    if (
        not await verify_password(settings, user["password_hash"] if user else None, body.password)
        or user is None
    ):
        await run_in_threadpool(throttle.failed, email, client)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong email or password", headers={"WWW-Authenticate": "Bearer"}
        )
    await run_in_threadpool(throttle.succeeded, email)
    return TokenOut(
        access_token=issue_token(settings, user["_id"]), expires_in=settings.access_token_ttl_seconds
    )
