"""The app factory (``services.backend.app:create_app``) that uvicorn calls."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from services.backend import heartbeat, ratelimit
from services.backend.deps import Backend
from services.backend.keys import (
    DEV_JWT_SECRET_NAME,
    DEV_SESSION_SECRET_NAME,
    KeyRing,
    UnusableKey,
    dev_reader,
)
from services.backend.routers import analyses, auth, datasets, health, users, wellknown
from services.backend.runner import AnalysisRunner
from services.backend.security import HashingBusy
from services.backend.settings import BackendSettings, load_settings
from services.backend.throttle import KnownBlocksGate, LoginThrottle, TooManyFailures
from services.common import forwarded, hardening, logs, observability, openapi, sentry
from services.common.docstore import DocStore, Index, ensure_indexes, open_store
from services.common.secrets import IN_USE, RuntimeSecrets, SecretManagerReader, SecretReader, Snapshot
from services.common.storage import open_storage

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# How often a revision whose secrets did not load yet checks again whether it can open its store.
_STARTING_POLL_SECONDS = 0.2
# After a database-url rotation, requests already running on the old connection get this long to finish.
OLD_STORE_CLOSE_SECONDS = 30.0
# Cloud Run's front end refuses HTTP/1 requests over 32 MiB (so does the local router): an oversized
# body up to that size is read and thrown away before the 413; a bigger one is not worth reading.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


# Every index the backend's queries need, declared once; created at startup on SQLite and MongoDB alike,
# and listed by the store, so snapshots carry them. Keep in step with the queries:
#   users: login finds by email; datasets: one owner's list in created_at order, paged by (created_at, _id),
#   and the account deletion by owner; analyses: the account deletion by owner, and the runner's
#   recovery query by status; sessions: logout of every session and the account deletion, by user.
INDEXES: dict[str, list[Index]] = {
    "users": [Index.on("email", unique=True)],
    "datasets": [Index.on("owner_id", "created_at", "_id")],
    "analyses": [Index.on("owner_id"), Index.on("status")],
    "sessions": [Index.on("user_id")],
}
log = logging.getLogger(__name__)


class RefuseOversizedUploads:
    """Pure ASGI: the multipart parser spools the whole body before the route runs; refuse early, by the
    declared length, a POST whose upload cannot fit."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        length = Headers(scope=scope).get("content-length", "") if scope["type"] == "http" else ""
        declared = int(length) if length.isdigit() else 0
        if scope.get("method") != "POST" or declared <= self.limit + MULTIPART_OVERHEAD_BYTES:
            await self.app(scope, receive, send)
            return
        detail = {"detail": f"request body exceeds the upload limit of {self.limit} bytes"}
        if declared > MAX_REQUEST_BYTES:
            await JSONResponse(detail, status_code=413, headers={"Connection": "close"})(scope, receive, send)
            return
        # Read the body to its end first: answering while the sender (a client, or the router) is
        # still sending makes the server close a connection with unread data, the kernel resets it,
        # and the 413 already on its way is lost: the client sees an empty 502.
        while (await receive()).get("more_body", False):
            pass
        await JSONResponse(detail, status_code=413)(scope, receive, send)


def prepare_store(store: DocStore) -> None:
    ensure_indexes(store, INDEXES)


@dataclasses.dataclass(frozen=True)
class SecretNames:
    jwt_signing_key: str
    session_key: str
    database_url: str | None
    sentry_dsn: str | None = None  # optional: the service runs without it

    @classmethod
    def of(cls, settings: BackendSettings) -> SecretNames:
        if settings.secrets_project is None:
            return cls(DEV_JWT_SECRET_NAME, DEV_SESSION_SECRET_NAME, None)
        assert settings.secret_jwt_signing_key and settings.secret_session_key  # checked by the settings
        return cls(
            settings.secret_jwt_signing_key,
            settings.secret_session_key,
            settings.secret_database_url,
            settings.secret_sentry_dsn,
        )

    def required(self) -> list[str]:
        """The secrets the service cannot start without."""
        return [n for n in (self.jwt_signing_key, self.session_key, self.database_url) if n is not None]

    def optional(self) -> list[str]:
        return [self.sentry_dsn] if self.sentry_dsn is not None else []


def secret_reader(settings: BackendSettings) -> SecretReader:
    if settings.secrets_project is None:
        return dev_reader()
    return SecretManagerReader(
        settings.secrets_project,
        settings.secrets_endpoint,
        timeout=min(5.0, max(1.0, settings.secrets_refresh_seconds)),
    )


def create_app(settings: BackendSettings | None = None, reader: SecretReader | None = None) -> FastAPI:
    """``reader`` replaces Secret Manager (tests); by default it follows the settings."""
    settings = settings or load_settings()
    sentry.init(settings)
    names = SecretNames.of(settings)

    def start_error_reporting(secrets: RuntimeSecrets) -> None:
        """Sentry with the DSN secret's ``current`` version; without it the service runs, and says why."""
        if names.sentry_dsn is None:
            return
        version = secrets.snapshot()[names.sentry_dsn].get("current")
        if version is None:
            problem = secrets.status()[names.sentry_dsn]
            log.warning("secret %s %s; running without Sentry", names.sentry_dsn, problem)
            return
        try:
            sentry.init(settings, version.value.decode())
        except (sentry.InvalidDsn, UnicodeDecodeError):
            log.warning(
                "secret %s version %s is not a Sentry DSN; running without Sentry",
                names.sentry_dsn,
                version.number,
            )

    def on_secrets_change(app: FastAPI, snapshot: Snapshot) -> None:
        try:
            app.state.keys = KeyRing.build(snapshot, names.jwt_signing_key, names.session_key)
            app.state.keys_error = None
        except UnusableKey as exc:
            # Keep signing with the keys in use; startup and readiness name the problem.
            app.state.keys_error = str(exc)
            log.error("keys not updated: %s", exc)
        reconnect(app, snapshot)

    def database(snapshot: Snapshot) -> tuple[str, str | None]:
        """The database URL to use and its version (None when it is not a Secret Manager secret)."""
        if names.database_url is None:
            return settings.database, None
        version = snapshot[names.database_url]["current"]
        return version.value.decode(), version.number

    def in_use(version: str | None) -> None:
        if names.database_url is not None and version is not None:
            IN_USE.labels(settings.service_name, settings.revision, names.database_url).set(float(version))

    def reconnect(app: FastAPI, snapshot: Snapshot) -> None:
        """A new database-url version: connect with it, switch, close the old connection a bit later."""
        backend: Backend | None = app.state.backend
        if backend is None or names.database_url is None:
            return
        url, version = database(snapshot)
        if version == backend.database_version:
            return
        try:
            store = open_store(url)
            store.ping()
            prepare_store(store)
        except Exception as exc:
            # Keep the connection that works (fail static); the next refresh tries again.
            log.error("database-url version %s: cannot connect (%s)", version, type(exc).__name__)
            return
        old = backend.store
        backend.store, backend.database_version = store, version
        backend.runner.use_store(store)
        # The throttle and the rate limits count in the document store: they follow it to the new
        # connection, keeping the refusals this process already knows.
        backend.throttle = dataclasses.replace(backend.throttle, store=store)
        if settings.rate_limit_enabled and settings.rate_limit_storage_url is None:
            previous: ratelimit.RateLimits | None = app.state.rate_limits
            app.state.rate_limits = ratelimit.RateLimits(settings, store)
            if previous is not None:
                app.state.rate_limits.refused = previous.refused
        in_use(version)
        log.info("reconnected with database-url version %s", version)
        timer = threading.Timer(OLD_STORE_CLOSE_SECONDS, old.close)
        timer.daemon = True
        timer.start()

    async def open_backend(app: FastAPI, secrets: RuntimeSecrets) -> list[asyncio.Task[None]]:
        """Open the store (with the loaded database URL) and start the background tasks."""
        url, version = database(secrets.snapshot())
        store = await run_in_threadpool(open_store, url)
        try:
            storage = await run_in_threadpool(open_storage, settings.storage)
            await run_in_threadpool(prepare_store, store)
            runner = AnalysisRunner(settings, store, storage)
            await run_in_threadpool(runner.reap_orphans)
            rate_limits = (
                await run_in_threadpool(ratelimit.RateLimits, settings, store)
                if settings.rate_limit_enabled
                else None
            )
        except BaseException:
            store.close()
            raise
        backend = Backend(settings, store, storage, runner, LoginThrottle(settings, store), version)
        app.state.backend = backend
        app.state.rate_limits = rate_limits
        in_use(version)
        # A rotation that landed while the store was opening is not missed.
        await run_in_threadpool(reconnect, app, secrets.snapshot())
        tasks = [asyncio.create_task(runner.reap_forever())]
        if settings.heartbeat_seconds > 0:
            # Beats follow the store to a new database-url version.
            tasks.append(asyncio.create_task(heartbeat.beat_forever(lambda: backend.store, settings)))
        return tasks

    async def open_when_loaded(app: FastAPI, secrets: RuntimeSecrets) -> list[asyncio.Task[None]]:
        while not (secrets.loaded() and getattr(app.state, "keys", None) is not None):
            await asyncio.sleep(_STARTING_POLL_SECONDS)
        return await open_backend(app, secrets)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backend = None
        app.state.keys = None
        secrets = RuntimeSecrets(
            reader or secret_reader(settings),
            names.required(),
            refresh_seconds=settings.secrets_refresh_seconds,
            service=settings.service_name,
            revision=settings.revision,
            on_change=lambda snapshot: on_secrets_change(app, snapshot),
            optional=names.optional(),
        )
        app.state.secrets = secrets
        await run_in_threadpool(secrets.refresh)
        # A DSN that loads later (or a new version) is used by the next instance.
        start_error_reporting(secrets)
        secrets.start()
        # Normally the secrets are there and the app opens its store before it takes requests. If not,
        # it serves its probes (startup answers 503 naming the secret) and opens once they load.
        opening = asyncio.create_task(open_when_loaded(app, secrets))
        if secrets.loaded() and app.state.keys is not None:
            await asyncio.shield(opening)
        try:
            yield
        finally:
            secrets.stop()
            opening.cancel()
            (tasks,) = await asyncio.gather(opening, return_exceptions=True)
            # The heartbeat lets a beat in flight finish before the store below is closed.
            for task in tasks if isinstance(tasks, list) else []:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            backend: Backend | None = app.state.backend
            if backend is not None:
                await backend.runner.close()
                backend.store.close()

    app = FastAPI(
        title="EthixAI backend",
        version="1.0.0",
        description="Users, CSV datasets and fairness analyses (computed by ai_core).",
        lifespan=lifespan,
    )
    for module in (health, auth, users, datasets, analyses, wellknown):
        app.include_router(module.router)

    def throttle() -> LoginThrottle | None:
        backend: Backend | None = getattr(app.state, "backend", None)
        return backend.throttle if backend else None

    app.add_middleware(KnownBlocksGate, throttle=throttle)
    app.add_middleware(RefuseOversizedUploads, limit=settings.max_upload_bytes)

    @app.exception_handler(HashingBusy)
    async def hashing_busy(request: Request, exc: HashingBusy) -> JSONResponse:
        detail = "too many password checks at once; retry shortly"
        return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": "1"})

    @app.exception_handler(TooManyFailures)
    async def too_many_failures(request: Request, exc: TooManyFailures) -> JSONResponse:
        return exc.response()

    ratelimit.install(app, lambda: getattr(app.state, "rate_limits", None))
    openapi.install(app, rate_limited_prefix="/api/")
    # Each install wraps the ones before: metrics count the early 413s and 429s, every answer (injected
    # faults too) gets CORS and security headers, the access log sees the final status, and the forwarded
    # client (outermost) is set before any of them reads the address.
    observability.install(app, settings)
    hardening.install(app, settings)
    logs.install(app, settings)
    forwarded.install(app, settings)
    return app
