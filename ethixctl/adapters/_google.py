"""What the Google client-library adapters share: building REST clients and mapping their errors.

google.* is imported inside the functions so importing an adapter stays cheap for the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from ethixctl.errors import EthixError, PlatformUnavailable, UsageError

T = TypeVar("T")


def client_kwargs(endpoint: str | None) -> dict[str, Any]:
    """REST transport; a local endpoint gets anonymous credentials, Google gets the default ones."""
    kwargs: dict[str, Any] = {"transport": "rest"}
    if endpoint is not None:
        from google.auth.credentials import AnonymousCredentials

        kwargs["client_options"] = {"api_endpoint": endpoint}
        kwargs["credentials"] = AnonymousCredentials()
    return kwargs


def _error_field(exc: Exception, field: str) -> str:
    response = getattr(exc, "response", None)
    try:
        return str(response.json()["error"][field])  # type: ignore[union-attr]
    except Exception:
        return ""


def api_message(exc: Exception) -> str:
    """The server's own message, without the method and URL the client library prefixes."""
    return _error_field(exc, "message") or str(getattr(exc, "message", exc))


def _not_connected(exc: Exception) -> bool:
    """No connection was made (refused): the request never reached the server, so it is safe to resend."""
    from urllib3.exceptions import NewConnectionError

    return isinstance(getattr(exc.args[0] if exc.args else None, "reason", None), NewConnectionError)


def call(
    what: str,
    fn: Callable[[], T],
    *,
    endpoint: str | None,
    api: str,
    unknown: str | None = None,
    unknown_hint: str | None = None,
    restart_wait: float = 0.0,
) -> T:
    """Run one client call; turn library and transport failures into errors an operator can act on.

    With `restart_wait`, a refused connection is tried again for that many seconds: the local control
    plane is restarted by the platform daemon within about a second when it dies.
    """
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    deadline = time.monotonic() + restart_wait
    try:
        while True:
            try:
                return fn()
            except requests.ConnectionError as exc:
                if not _not_connected(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)
    except gexc.NotFound as exc:
        raise UsageError(unknown or f"{what}: {api_message(exc)}", hint=unknown_hint) from None
    except gexc.BadRequest as exc:
        # Over REST every 400 is BadRequest; the google.rpc status in the body tells bad input apart.
        if isinstance(exc, gexc.InvalidArgument) or _error_field(exc, "status") == "INVALID_ARGUMENT":
            raise UsageError(f"{what}: {api_message(exc)}") from None
        raise EthixError(f"{what}: {api_message(exc)}") from None
    except (gexc.ServiceUnavailable, requests.ConnectionError, requests.Timeout) as exc:
        if endpoint is None:
            raise PlatformUnavailable(f"{what}: {api} unreachable ({type(exc).__name__})") from None
        raise PlatformUnavailable(
            f"{what}: the local control plane at {endpoint} is not answering", hint="run `ethixctl up`"
        ) from None
    except auth_exc.DefaultCredentialsError as exc:
        raise PlatformUnavailable(
            f"{what}: no Google credentials ({exc})", hint="run `gcloud auth application-default login`"
        ) from None
    except gexc.GoogleAPICallError as exc:
        raise EthixError(f"{what}: {api_message(exc)}") from None
