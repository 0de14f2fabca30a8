"""Probes: liveness (no external calls), readiness (doc store + storage, bounded), startup."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.backend.deps import Settings, Storage, Store
from services.backend.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/liveness", response_model=Health)
async def liveness() -> Health:
    return Health(status="alive")


async def _check(probe: Callable[[], None], timeout: float) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(probe), timeout)
    except TimeoutError:
        return f"timeout after {timeout:g} s"
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get("/readiness", response_model=Health, responses={503: {"model": Health}})
async def readiness(settings: Settings, store: Store, storage: Storage) -> JSONResponse | Health:
    timeout = settings.readiness_timeout_seconds
    docstore, bucket = await asyncio.gather(_check(store.ping, timeout), _check(storage.ping, timeout))
    checks = {"docstore": docstore, "storage": bucket}
    if docstore == bucket == "ok":
        return Health(status="ready", checks=checks)
    return JSONResponse(Health(status="not_ready", checks=checks).model_dump(), status_code=503)


@router.get("/startup", response_model=Health)
async def startup() -> Health:
    # The lifespan opened the store and storage before the app takes requests, so reaching here is enough.
    return Health(status="started")
