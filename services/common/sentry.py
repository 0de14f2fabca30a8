"""Optional error reporting with sentry-sdk: on when ``SENTRY_DSN`` is set, off otherwise.

The release is ``SERVICE@REVISION``, so an error rate is attributable to a canary. No personal data is
sent (``send_default_pii=False`` drops cookies, the Authorization header and client addresses), and the
event passes through the same redaction as log lines before it leaves the process.
"""

from __future__ import annotations

from typing import Any

from services.common.settings import ServiceSettings


def release(settings: ServiceSettings) -> str:
    return f"{settings.service_name}@{settings.revision}"


def init(settings: ServiceSettings) -> bool:
    """Start the SDK when a DSN is configured; returns whether it did. Call before creating the app."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk

    from services.common.logs import RedactFilter, secret_values

    redact = RedactFilter(secret_values(settings)).redact

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [scrub(item) for item in value]
        return value

    def before_send(event: Any, hint: Any) -> Any:
        # Request bodies may hold passwords or CSV content: never send them.
        event.get("request", {}).pop("data", None)
        return scrub(event)

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=release(settings),
        environment=settings.env,
        send_default_pii=False,
        max_request_body_size="never",
        traces_sample_rate=0.0,
        before_send=before_send,
    )
    sentry_sdk.set_tag("service", settings.service_name)
    sentry_sdk.set_tag("revision", settings.revision)
    return True
