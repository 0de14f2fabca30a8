"""Probes: liveness (no external calls), readiness (doc store + storage, bounded; secrets' staleness),
startup (503 naming the secrets until they are loaded and the store is open)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.backend.deps import Settings, Storage, Store, starting_problems
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
async def readiness(
    request: Request, settings: Settings, store: Store, storage: Storage
) -> JSONResponse | Health:
    timeout = settings.readiness_timeout_seconds
    docstore, bucket = await asyncio.gather(_check(store.ping, timeout), _check(storage.ping, timeout))
    # Stale secrets are reported, not failed on: the last values keep serving (fail static).
    secrets = {f"secret:{name}": state for name, state in request.app.state.secrets.status().items()}
    checks = {"docstore": docstore, "storage": bucket, **secrets}
    if docstore == bucket == "ok":
        return Health(status="ready", checks=checks)
    return JSONResponse(Health(status="not_ready", checks=checks).model_dump(), status_code=503)


@router.get("/startup", response_model=Health, responses={503: {"model": Health}})
async def startup(request: Request) -> JSONResponse | Health:
    if request.app.state.backend is not None:
        return Health(status="started")
    # The message names the secrets and why they did not load; it never carries a value.
    checks = starting_problems(request)
    return JSONResponse(Health(status="starting", checks=checks).model_dump(), status_code=503)
