"""``Annotated`` dependencies shared by the routers: Settings, Store, Storage, Runner, CurrentUser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from services.backend.runner import AnalysisRunner
from services.backend.security import InvalidToken, verify_token
from services.backend.settings import BackendSettings
from services.backend.throttle import LoginThrottle
from services.common.docstore import DocStore
from services.common.storage import ObjectStore


@dataclass
class Backend:
    """What the app holds for its lifetime (``app.state.backend``)."""

    settings: BackendSettings
    store: DocStore
    storage: ObjectStore
    runner: AnalysisRunner


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _settings(request: Request) -> BackendSettings:
    return _backend(request).settings


def _store(request: Request) -> DocStore:
    return _backend(request).store


def _storage(request: Request) -> ObjectStore:
    return _backend(request).storage


def _runner(request: Request) -> AnalysisRunner:
    return _backend(request).runner


def _throttle(request: Request) -> LoginThrottle:
    backend = _backend(request)
    return LoginThrottle(backend.settings, backend.store)


def _client_address(request: Request) -> str:
    # uvicorn has already taken it from X-Forwarded-For when the peer is a trusted proxy
    # (FORWARDED_ALLOW_IPS: the local router on 127.0.0.1; on Cloud Run, Google's front end).
    return request.client.host if request.client else "unknown"


Settings = Annotated[BackendSettings, Depends(_settings)]
Store = Annotated[DocStore, Depends(_store)]
Storage = Annotated[ObjectStore, Depends(_storage)]
Runner = Annotated[AnalysisRunner, Depends(_runner)]
Throttle = Annotated[LoginThrottle, Depends(_throttle)]
ClientAddress = Annotated[str, Depends(_client_address)]

_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def _current_user(
    settings: Settings,
    store: Store,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> dict[str, Any]:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    try:
        user_id = verify_token(settings, credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None
    user = await run_in_threadpool(store["users"].find_one, {"_id": user_id})
    if user is None:
        raise _unauthorized("the token's user no longer exists")
    return user


CurrentUser = Annotated[dict[str, Any], Depends(_current_user)]

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or expired token"}}


_SINGULAR = {"datasets": "dataset", "analyses": "analysis"}


def owned(store: DocStore, collection: str, doc_id: str, owner_id: str) -> dict[str, Any]:
    """The owner's document, or 404: another user's dataset or analysis looks exactly like a missing one."""
    doc = store[collection].find_one({"_id": doc_id, "owner_id": owner_id})
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{_SINGULAR[collection]} not found")
    return doc
