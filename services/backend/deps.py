"""``Annotated`` dependencies shared by the routers: Settings, Store, Storage, Runner, Keys, Throttle,
ClientAddress, CurrentUser."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from services.backend import sessions
from services.backend.keys import KeyRing
from services.backend.runner import AnalysisRunner
from services.backend.security import InvalidToken, verify_token
from services.backend.settings import BackendSettings
from services.backend.throttle import LoginThrottle
from services.common.docstore import DocStore, Filter
from services.common.forwarded import scope_client
from services.common.secrets import RuntimeSecrets
from services.common.storage import ObjectStore


@dataclass
class Backend:
    """What the app holds for its lifetime (``app.state.backend``)."""

    settings: BackendSettings
    store: DocStore
    storage: ObjectStore
    runner: AnalysisRunner
    throttle: LoginThrottle
    # The database-url version the open store was opened with (None: not from Secret Manager).
    database_version: str | None = None


def starting_problems(request: Request) -> dict[str, str]:
    """Why the app is not serving yet (secrets not loaded, unusable keys): names, never values."""
    secrets: RuntimeSecrets | None = getattr(request.app.state, "secrets", None)
    problems = secrets.problems() if secrets is not None else {"secrets": "not loaded yet"}
    keys_error = getattr(request.app.state, "keys_error", None)
    if keys_error:
        problems["keys"] = keys_error
    return problems or {"backend": "opening the document store"}


def _backend(request: Request) -> Backend:
    backend: Backend | None = getattr(request.app.state, "backend", None)
    if backend is None:
        problems = "; ".join(f"{name}: {problem}" for name, problem in starting_problems(request).items())
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"starting: {problems}", {"Retry-After": "2"}
        )
    return backend


# These are `async def` although they never await: FastAPI runs a plain `def` dependency in a worker
# thread, and the thread round trip costs far more than reading an attribute.
async def _keys(request: Request) -> KeyRing:
    _backend(request)
    keys: KeyRing = request.app.state.keys
    return keys


async def _settings(request: Request) -> BackendSettings:
    return _backend(request).settings


async def _store(request: Request) -> DocStore:
    return _backend(request).store


async def _storage(request: Request) -> ObjectStore:
    return _backend(request).storage


async def _runner(request: Request) -> AnalysisRunner:
    return _backend(request).runner


async def _throttle(request: Request) -> LoginThrottle:
    return _backend(request).throttle


async def _client_address(request: Request) -> str:
    # Behind ETHIX_TRUSTED_PROXY_HOPS proxies, services/common/forwarded.py has put the client here.
    return scope_client(request.scope)


Settings = Annotated[BackendSettings, Depends(_settings)]
Store = Annotated[DocStore, Depends(_store)]
Storage = Annotated[ObjectStore, Depends(_storage)]
Runner = Annotated[AnalysisRunner, Depends(_runner)]
Keys = Annotated[KeyRing, Depends(_keys)]
Throttle = Annotated[LoginThrottle, Depends(_throttle)]
ClientAddress = Annotated[str, Depends(_client_address)]

_T = TypeVar("_T")
_bearer = HTTPBearer(auto_error=False, description="Access token from POST /api/v1/auth/login")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def point_read(store: DocStore, read: Callable[[Filter], _T], filter: Filter) -> _T:
    """``read(filter)`` on the event loop when the store's reads are local (``DocStore.local_reads``),
    else in a worker thread."""
    if store.local_reads:
        return read(filter)
    return await run_in_threadpool(read, filter)


@dataclass(frozen=True)
class Caller:
    user: dict[str, Any]
    session_id: str


async def _caller(
    keys: Keys,
    store: Store,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorized("missing bearer token")
    try:
        claims = verify_token(keys, credentials.credentials)
    except InvalidToken as exc:
        raise _unauthorized(str(exc)) from None
    session = await point_read(store, store[sessions.COLLECTION].find_one, {"_id": claims.session_id})
    try:
        sessions.check(session, claims.user_id)
    except sessions.InvalidSession as exc:
        raise _unauthorized(str(exc)) from None
    user = await point_read(store, store["users"].find_one, {"_id": claims.user_id})
    if user is None:
        raise _unauthorized("the token's user no longer exists")
    return Caller(user, claims.session_id)


async def _current_user(caller: Annotated[Caller, Depends(_caller)]) -> dict[str, Any]:
    return caller.user


CurrentCaller = Annotated[Caller, Depends(_caller)]
CurrentUser = Annotated[dict[str, Any], Depends(_current_user)]

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or expired token"}}


_SINGULAR = {"datasets": "dataset", "analyses": "analysis"}


def owned(store: DocStore, collection: str, doc_id: str, owner_id: str) -> dict[str, Any]:
    """The owner's document, or 404: another user's dataset or analysis looks exactly like a missing one."""
    doc = store[collection].find_one({"_id": doc_id, "owner_id": owner_id})
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{_SINGULAR[collection]} not found")
    return doc
