"""The ai_core FastAPI app: ``POST /api/v1/analyze`` and the three probes.

Start-up: the app answers probes at once; the worker process imports pandas/scikit-learn/shap/fairlearn
and computes one tiny analysis (the warm-up). ``/health/startup`` says 503 until that is done, so Cloud
Run (and the local platform) route no traffic to a revision that would answer its first request in 3 s.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.ai_core.analysis import AnalysisError, Limits
from services.ai_core.engine import Busy, Engine, WorkerLost
from services.ai_core.schemas import (
    AnalyzeRequest,
    AnalyzeResponse,
    ErrorBody,
    Message,
    Readiness,
    Starting,
)
from services.ai_core.settings import AiCoreSettings
from services.common import hardening, logs, observability, openapi, sentry


def create_app(settings: AiCoreSettings | None = None) -> FastAPI:
    settings = settings or AiCoreSettings()
    sentry.init(settings)
    limits = Limits(
        max_rows=settings.analysis_max_rows,
        max_columns=settings.analysis_max_columns,
        max_groups=settings.analysis_max_groups,
        explain_rows=settings.analysis_explain_rows,
    )
    engine = Engine(limits, workers=settings.analysis_workers, max_queued=settings.analysis_max_queued)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start_warm_up()
        try:
            yield
        finally:
            engine.shutdown()

    app = FastAPI(title="ethix ai_core", version="1", lifespan=lifespan)
    app.state.engine = engine
    openapi.install(app)
    # Outermost last: access log and request id around CORS and security headers around the metrics.
    observability.install(app, settings)
    hardening.install(app, settings)
    logs.install(app, settings)
    metric_labels = (settings.service_name, settings.revision)

    @app.get("/health/liveness")
    def liveness() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health/startup", responses={503: {"model": Starting}})
    def startup() -> Any:
        if engine.warm:
            return {"status": "started"}
        error = engine.warm_up_error
        detail = f"warm-up failed: {error}" if error else "warming up"
        return JSONResponse({"status": "starting", "detail": detail}, status_code=503)

    @app.get("/health/readiness", responses={503: {"model": Readiness}})
    def readiness() -> Any:
        error = engine.warm_up_error
        checks = {
            "warm_up": "ok" if engine.warm else (f"failed: {error}" if error else "pending"),
            "queue": f"{engine.pending}/{settings.analysis_max_queued}",
        }
        ready = engine.warm and engine.pending < settings.analysis_max_queued
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        return body if ready else JSONResponse(body, status_code=503)

    @app.post(
        "/api/v1/analyze",
        response_model=AnalyzeResponse,
        responses={
            400: {"model": Message, "description": "The body is not decodable JSON."},
            422: {"model": ErrorBody, "description": "The data cannot be analysed as asked; `msg` says why."},
            503: {"model": Message, "description": "Too many analyses waiting, or the worker was lost."},
        },
    )
    async def analyze(body: AnalyzeRequest) -> Any:
        started = time.perf_counter()
        try:
            result = await engine.analyze(body)
        except AnalysisError as exc:
            observability.ANALYSES.labels(*metric_labels, "failed").inc()
            return JSONResponse(
                {"detail": [{"loc": ["body", exc.field], "msg": exc.message, "type": "analysis_error"}]},
                status_code=422,
            )
        except (Busy, WorkerLost) as exc:
            observability.ANALYSES.labels(*metric_labels, "failed").inc()
            return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})
        except Exception:
            observability.ANALYSES.labels(*metric_labels, "failed").inc()
            raise
        observability.ANALYSES.labels(*metric_labels, "succeeded").inc()
        observability.ANALYSIS_DURATION.labels(*metric_labels).observe(time.perf_counter() - started)
        return result

    return app
