"""Run a service under uvicorn on ``PORT``, the way Cloud Run starts a container."""

from __future__ import annotations

import uvicorn

from services.common import logs
from services.common.settings import ServiceSettings


def run(app_factory: str, settings: ServiceSettings) -> None:
    logs.configure(settings)
    uvicorn.run(
        app_factory,
        factory=True,
        host=settings.host,
        port=settings.port,
        # Logging is set up above (JSON lines); the access log is ours, in the same format.
        log_config=None,
        log_level=settings.effective_log_level,
        access_log=False,
        # Cloud Run sends SIGTERM and allows 10 s; finish in-flight requests within that.
        timeout_graceful_shutdown=8,
    )
