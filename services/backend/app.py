"""The app factory (``services.backend.app:create_app``) that uvicorn calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.backend import heartbeat
from services.backend.deps import Backend
from services.backend.routers import analyses, auth, datasets, health, users
from services.backend.runner import AnalysisRunner
from services.backend.settings import BackendSettings, load_settings
from services.common import observability
from services.common.docstore import DocStore, open_store
from services.common.storage import open_storage

# Room for the multipart boundaries and part headers around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


def prepare_store(store: DocStore) -> None:
    store["users"].create_unique_index("email")


def create_app(settings: BackendSettings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await run_in_threadpool(open_store, settings.database)
        try:
            storage = await run_in_threadpool(open_storage, settings.storage)
            await run_in_threadpool(prepare_store, store)
            runner = AnalysisRunner(settings, store, storage)
            await run_in_threadpool(runner.reap_orphans)
            app.state.backend = Backend(settings, store, storage, runner)
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
            return JSONResponse({"detail": detail}, status_code=413)
        return await call_next(request)

    # Installed last, so its middleware is outermost and also counts the early 413s.
    observability.install(app, settings)
    return app
