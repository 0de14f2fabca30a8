"""Optional error reporting with sentry-sdk: on when a DSN is configured, off otherwise.

The DSN comes from ``SENTRY_DSN`` (ai_core; the backend in development) or, in the backend, from the
Secret Manager secret named by ``ETHIX_SECRET_SENTRY_DSN``, loaded at runtime with the other secrets:
then the SDK starts in the lifespan, after the app exists. That is enough: the Starlette integration
patches the classes, and wraps each request when it is served.

The release is ``SERVICE@REVISION``, so an error rate is attributable to a canary. No personal data is
sent (``send_default_pii=False`` drops cookies, the Authorization header and client addresses), and the
event passes through the same redaction as log lines before it leaves the process.
"""

from __future__ import annotations

from typing import Any

from services.common.settings import ServiceSettings


def release(settings: ServiceSettings) -> str:
    return f"{settings.service_name}@{settings.revision}"


class InvalidDsn(ValueError):
    """The DSN does not parse; the message carries no part of it."""


def init(settings: ServiceSettings, dsn: str | None = None) -> bool:
    """Start the SDK with ``dsn`` (loaded at runtime) or ``settings.sentry_dsn``; returns whether it did."""
    if dsn is None:
        if settings.sentry_dsn is None:
            return False
        dsn = settings.sentry_dsn.get_secret_value()
    import sentry_sdk
    from sentry_sdk.utils import BadDsn

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

    try:
        sentry_sdk.init(
            dsn=dsn,
            release=release(settings),
            environment=settings.env,
            send_default_pii=False,
            max_request_body_size="never",
            traces_sample_rate=0.0,
            before_send=before_send,
        )
    except BadDsn:
        # BadDsn's message quotes parts of the DSN.
        raise InvalidDsn("not a Sentry DSN (https://PUBLIC_KEY@HOST/PROJECT_ID)") from None
    # The global scope: every request's scope inherits it, whichever task or thread called init.
    sentry_sdk.get_global_scope().set_tags({"service": settings.service_name, "revision": settings.revision})
    return True
