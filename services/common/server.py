"""Run a service under uvicorn on ``PORT``, the way Cloud Run starts a container."""

from __future__ import annotations

import uvicorn

from services.common.settings import ServiceSettings


def run(app_factory: str, settings: ServiceSettings) -> None:
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level="info",
        access_log=False,
        # Cloud Run sends SIGTERM and allows 10 s; finish in-flight requests within that.
        timeout_graceful_shutdown=8,
    )
