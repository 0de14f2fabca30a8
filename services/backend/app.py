"""The app factory (``services.backend.app:create_app``) that uvicorn calls."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

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
from services.backend.settings import BackendSettings, load_settings
from services.common import observability
from services.common.docstore import DocStore, open_store
from services.common.secrets import IN_USE, RuntimeSecrets, SecretManagerReader, SecretReader, Snapshot
from services.common.storage import open_storage

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# How often a revision whose secrets did not load yet checks again whether it can open its store.
_STARTING_POLL_SECONDS = 0.2
# After a database-url rotation, requests already running on the old connection get this long to finish.
OLD_STORE_CLOSE_SECONDS = 30.0


def prepare_store(store: DocStore) -> None:
    store["users"].create_unique_index("email")


@dataclass(frozen=True)
class SecretNames:
    jwt_signing_key: str
    session_key: str
    database_url: str | None

    @classmethod
    def of(cls, settings: BackendSettings) -> SecretNames:
        if settings.secrets_project is None:
            return cls(DEV_JWT_SECRET_NAME, DEV_SESSION_SECRET_NAME, None)
        assert settings.secret_jwt_signing_key and settings.secret_session_key  # checked by the settings
        return cls(settings.secret_jwt_signing_key, settings.secret_session_key, settings.secret_database_url)

    def all(self) -> list[str]:
        return [n for n in (self.jwt_signing_key, self.session_key, self.database_url) if n is not None]


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
    names = SecretNames.of(settings)

    def on_secrets_change(app: FastAPI, snapshot: Snapshot) -> None:
        try:
            app.state.keys = KeyRing.build(snapshot, names.jwt_signing_key, names.session_key)
            app.state.keys_error = None
        except UnusableKey as exc:
            # Keep signing with the keys in use; startup and readiness name the problem.
            app.state.keys_error = str(exc)
            print(f"backend: keys not updated: {exc}", flush=True)
        reconnect(app.state.backend, snapshot)

    def database(snapshot: Snapshot) -> tuple[str, str | None]:
        """The database URL to use and its version (None when it is not a Secret Manager secret)."""
        if names.database_url is None:
            return settings.database, None
        version = snapshot[names.database_url]["current"]
        return version.value.decode(), version.number

    def in_use(version: str | None) -> None:
        if names.database_url is not None and version is not None:
            IN_USE.labels(settings.service_name, settings.revision, names.database_url).set(float(version))

    def reconnect(backend: Backend | None, snapshot: Snapshot) -> None:
        """A new database-url version: connect with it, switch, close the old connection a bit later."""
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
            print(
                f"backend: database-url version {version}: cannot connect ({type(exc).__name__})", flush=True
            )
            return
        old = backend.store
        backend.store, backend.database_version = store, version
        backend.runner.use_store(store)
        in_use(version)
        print(f"backend: reconnected with database-url version {version}", flush=True)
        timer = threading.Timer(OLD_STORE_CLOSE_SECONDS, old.close)
        timer.daemon = True
        timer.start()

    async def open_backend(app: FastAPI, secrets: RuntimeSecrets) -> asyncio.Task[None]:
        url, version = database(secrets.snapshot())
        store = await run_in_threadpool(open_store, url)
        try:
            storage = await run_in_threadpool(open_storage, settings.storage)
            await run_in_threadpool(prepare_store, store)
            runner = AnalysisRunner(settings, store, storage)
            await run_in_threadpool(runner.reap_orphans)
        except BaseException:
            store.close()
            raise
        backend = Backend(settings, store, storage, runner, version)
        app.state.backend = backend
        in_use(version)
        # A rotation that landed while the store was opening is not missed.
        await run_in_threadpool(reconnect, backend, secrets.snapshot())
        return asyncio.create_task(runner.reap_forever())

    async def open_when_loaded(app: FastAPI, secrets: RuntimeSecrets) -> asyncio.Task[None]:
        while not (secrets.loaded() and getattr(app.state, "keys", None) is not None):
            await asyncio.sleep(_STARTING_POLL_SECONDS)
        return await open_backend(app, secrets)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backend = None
        app.state.keys = None
        secrets = RuntimeSecrets(
            reader or secret_reader(settings),
            names.all(),
            refresh_seconds=settings.secrets_refresh_seconds,
            service=settings.service_name,
            revision=settings.revision,
            on_change=lambda snapshot: on_secrets_change(app, snapshot),
        )
        app.state.secrets = secrets
        await run_in_threadpool(secrets.refresh)
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
            (reaper,) = await asyncio.gather(opening, return_exceptions=True)
            if isinstance(reaper, asyncio.Task):
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
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

    @app.middleware("http")
    async def refuse_oversized_uploads(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # The multipart parser spools the whole body before the route runs; refuse early what cannot fit.
        length = request.headers.get("content-length", "")
        limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        if request.method == "POST" and length.isdigit() and int(length) > limit:
            detail = f"request body exceeds the upload limit of {settings.max_upload_bytes} bytes"
            return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    # Installed last, so its middleware is outermost and also counts the early 413s.
    observability.install(app, settings)
    return app
