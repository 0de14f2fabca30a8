"""A minimal service for the analysis tests: the real shared observability middleware (metrics and
fault injection, exactly as in backend and ai_core) on one route, run by the real uvicorn runner.

Run as ``python -m tests.ethixctl.release.metric_app`` with PORT, K_SERVICE, K_REVISION and
ETHIX_FAULT_* set, like a Cloud Run revision.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.common import observability, server
from services.common.settings import ServiceSettings


def create_app() -> FastAPI:
    settings = ServiceSettings()
    app = FastAPI()
    observability.install(app, settings)

    @app.get("/api/v1/ping")
    def ping() -> dict[str, str]:
        return {"revision": settings.revision}

    @app.get("/health/startup")
    def startup() -> dict[str, str]:
        return {"status": "started"}

    return app


if __name__ == "__main__":
    server.run("tests.ethixctl.release.metric_app:create_app", ServiceSettings())
