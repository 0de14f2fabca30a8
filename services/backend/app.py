"""The app factory (``services.backend.app:create_app``) that uvicorn calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.backend import heartbeat, ratelimit
from services.backend.deps import Backend
from services.backend.routers import analyses, auth, datasets, health, users
from services.backend.runner import AnalysisRunner
from services.backend.security import HashingBusy
from services.backend.settings import BackendSettings, load_settings
from services.backend.throttle import TooManyFailures
from services.common import hardening, logs, observability, openapi, sentry
from services.common.docstore import DocStore, Index, ensure_indexes, open_store
from services.common.storage import open_storage

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Cloud Run's front end refuses HTTP/1 requests over 32 MiB (so does the local router): an oversized
# body up to that size is read and thrown away before the 413; a bigger one is not worth reading.
MAX_REQUEST_BYTES = 32 * 1024 * 1024


# Every index the backend's queries need, declared once; created at startup on SQLite and MongoDB alike,
# and listed by the store, so snapshots carry them. Keep in step with the queries:
#   users: login finds by email; datasets: one owner's list in created_at order, paged by (created_at, _id),
#   and the account deletion by owner; analyses: the account deletion by owner, and the runner's
#   recovery query by status.
INDEXES: dict[str, list[Index]] = {
    "users": [Index.on("email", unique=True)],
    "datasets": [Index.on("owner_id", "created_at", "_id")],
    "analyses": [Index.on("owner_id"), Index.on("status")],
}


def prepare_store(store: DocStore) -> None:
    ensure_indexes(store, INDEXES)


def create_app(settings: BackendSettings | None = None) -> FastAPI:
    settings = settings or load_settings()
    sentry.init(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await run_in_threadpool(open_store, settings.database)
        try:
            storage = await run_in_threadpool(open_storage, settings.storage)
            await run_in_threadpool(prepare_store, store)
            runner = AnalysisRunner(settings, store, storage)
            await run_in_threadpool(runner.reap_orphans)
            app.state.backend = Backend(settings, store, storage, runner)
            if settings.rate_limit_enabled:
                app.state.rate_limits = await run_in_threadpool(ratelimit.RateLimits, settings, store)
            tasks = [asyncio.create_task(runner.reap_forever())]
            if settings.heartbeat_seconds > 0:
                tasks.append(asyncio.create_task(heartbeat.beat_forever(store, settings)))
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await runner.close()
        finally:
            store.close()

    app = FastAPI(
        title="EthixAI backend",
        version="1.0.0",
        description="Users, CSV datasets and fairness analyses (computed by ai_core).",
        lifespan=lifespan,
    )
    for module in (health, auth, users, datasets, analyses):
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
            if int(length) > MAX_REQUEST_BYTES:
                return JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})
            # Read the body to its end first: answering while the sender (a client, or the router)
            # is still sending makes the server close a connection with unread data, the kernel
            # resets it, and the 413 already on its way is lost: the client sees an empty 502.
            async for _ in request.stream():
                pass
            return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    @app.exception_handler(HashingBusy)
    async def hashing_busy(request: Request, exc: HashingBusy) -> JSONResponse:
        detail = "too many password checks at once; retry shortly"
        return JSONResponse({"detail": detail}, status_code=429, headers={"Retry-After": "1"})

    @app.exception_handler(TooManyFailures)
    async def too_many_failures(request: Request, exc: TooManyFailures) -> JSONResponse:
        detail = "too many failed logins; retry later"
        return JSONResponse(
            {"detail": detail}, status_code=429, headers={"Retry-After": str(exc.retry_after)}
        )

    ratelimit.install(app, lambda: getattr(app.state, "rate_limits", None))
    openapi.install(app, rate_limited_prefix="/api/")
    # Each install wraps the ones before: metrics count the early 413s and 429s, every answer (injected
    # faults too) gets CORS and security headers, and the access log (outermost) sees the final status.
    observability.install(app, settings)
    hardening.install(app, settings)
    logs.install(app, settings)
    return app
