"""Secrets loaded at runtime from Secret Manager, by alias, refreshed in the background.

A service is given secret *names* (``ETHIX_SECRET_JWT_SIGNING_KEY=jwt-signing-key``), the project and,
locally, the Secret Manager endpoint; never a value. It reads each secret by alias — ``current`` (the
one that signs or connects), ``next`` (published to verifiers before it signs), ``previous`` (still
verifies what was signed before the last rotation) — never ``latest``.

Refreshing runs on its own thread, off the request path. When Secret Manager cannot be reached the
last values stay in use (fail static) and :meth:`RuntimeSecrets.status` says how stale they are. An
alias that does not exist, or points at a disabled version, is *absent*: that is how a rotation takes
a key away, so it is dropped at once rather than kept. Only ``current`` is required, and only of the
required secrets: an *optional* one (Sentry's DSN) is loaded and refreshed the same way, but the
service does not wait for it.

Every revision exports the version it loaded per secret and alias, so a rotation can wait until all
of them have it. Values never reach a log line, a metric, an exception or ``repr``; and each value is
handed to the log filter as it loads (``logs.learn_secrets``), so one that slipped into a message or a
Sentry event would be redacted there too.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import Counter, Gauge

from services.common import logs

ALIASES = ("current", "next", "previous")
REQUIRED_ALIAS = "current"
log = logging.getLogger(__name__)

SECRET_VERSION = Gauge(
    "ethix_secret_version",
    "Secret Manager version number this revision loaded, per secret and alias",
    ("service", "revision", "secret", "alias"),
)
REFRESH_FAILURES = Counter(
    "ethix_secret_refresh_failures_total",
    "Refreshes of a secret that failed (Secret Manager unreachable or refusing); the last values stay in use",
    ("service", "revision", "secret"),
)
IN_USE = Gauge(
    "ethix_secret_in_use_version",
    "Version of a connection secret (database URL) that the open connection was made with",
    ("service", "revision", "secret"),
)
LAST_REFRESH = Gauge(
    "ethix_secret_last_refresh_timestamp_seconds",
    "Unix time of the last successful refresh of a secret",
    ("service", "revision", "secret"),
)


class SecretsUnavailable(Exception):
    """Secret Manager could not answer (unreachable, timed out, refused). The message names no value."""


@dataclass(frozen=True)
class Version:
    number: str
    value: bytes = field(repr=False)


class SecretReader(Protocol):
    def access(self, secret: str, alias: str) -> Version | None:
        """The version ``alias`` points at; None when the alias is absent or its version not enabled."""


class SecretManagerReader:
    """google-cloud-secret-manager over REST: Google with default credentials, or a local endpoint."""

    def __init__(self, project: str, endpoint: str | None = None, timeout: float = 5.0):
        from google.cloud import secretmanager_v1

        kwargs: dict[str, Any] = {"transport": "rest"}
        if endpoint:
            from google.auth.credentials import AnonymousCredentials

            kwargs["client_options"] = {"api_endpoint": endpoint}
            kwargs["credentials"] = AnonymousCredentials()
        self._client = secretmanager_v1.SecretManagerServiceClient(**kwargs)
        self._project = project
        self._timeout = timeout

    def access(self, secret: str, alias: str) -> Version | None:
        import google_crc32c
        import requests
        from google.api_core import exceptions as gexc

        name = f"projects/{self._project}/secrets/{secret}/versions/{alias}"
        try:
            # No client-side retry: the next refresh is the retry, and it must not pile up behind this one.
            response = self._client.access_secret_version(name=name, retry=None, timeout=self._timeout)
        except gexc.NotFound:
            return None
        except gexc.BadRequest as exc:
            if _status(exc) == "FAILED_PRECONDITION":  # the version is disabled or destroyed
                return None
            raise SecretsUnavailable(f"{secret}/{alias}: refused ({_status(exc) or 'HTTP 400'})") from None
        except gexc.GoogleAPICallError as exc:
            raise SecretsUnavailable(f"{secret}/{alias}: {type(exc).__name__}") from None
        except (requests.RequestException, OSError) as exc:
            raise SecretsUnavailable(
                f"{secret}/{alias}: Secret Manager unreachable ({type(exc).__name__})"
            ) from None
        data = bytes(response.payload.data)
        if "data_crc32c" in response.payload and google_crc32c.value(data) != response.payload.data_crc32c:
            raise SecretsUnavailable(f"{secret}/{alias}: checksum mismatch")
        return Version(response.name.rsplit("/", 1)[-1], data)


def _status(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    try:
        return str(response.json()["error"]["status"])  # type: ignore[union-attr]
    except Exception:
        return ""


class StaticReader:
    """Versions held in memory: the development defaults, and tests that change them at will."""

    def __init__(self, secrets: Mapping[str, Mapping[str, Version]] | None = None):
        self._secrets: dict[str, dict[str, Version]] = {k: dict(v) for k, v in (secrets or {}).items()}
        self._lock = threading.Lock()
        self.unreachable = False

    def set(self, secret: str, alias: str, version: Version | None) -> None:
        with self._lock:
            aliases = self._secrets.setdefault(secret, {})
            if version is None:
                aliases.pop(alias, None)
            else:
                aliases[alias] = version

    def access(self, secret: str, alias: str) -> Version | None:
        if self.unreachable:
            raise SecretsUnavailable(f"{secret}/{alias}: Secret Manager unreachable (simulated)")
        with self._lock:
            return self._secrets.get(secret, {}).get(alias)


@dataclass
class _State:
    versions: dict[str, Version] = field(default_factory=dict)
    loaded_at: float | None = None  # monotonic
    error: str | None = None


Snapshot = dict[str, dict[str, Version]]


class RuntimeSecrets:
    """The secrets one service needs, refreshed every ``refresh_seconds`` on a daemon thread."""

    def __init__(
        self,
        reader: SecretReader,
        secrets: list[str],
        *,
        refresh_seconds: float,
        service: str,
        revision: str,
        on_change: Callable[[Snapshot], None] | None = None,
        optional: Collection[str] = (),
    ):
        self._reader = reader
        self._names = [*secrets, *optional]
        self._required = list(secrets)
        self.refresh_seconds = refresh_seconds
        self._labels = (service, revision)
        self._on_change = on_change
        self._states = {name: _State() for name in self._names}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.loaded_event = threading.Event()

    # reading ---------------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        with self._lock:
            return {name: dict(state.versions) for name, state in self._states.items()}

    def loaded(self) -> bool:
        """Every required secret has a ``current`` version (loaded at least once)."""
        with self._lock:
            return all(REQUIRED_ALIAS in self._states[name].versions for name in self._required)

    def problems(self) -> dict[str, str]:
        """Required secrets without a ``current`` version, and why: the startup probe's message (names
        only)."""
        with self._lock:
            return {
                name: f"not loaded: {self._states[name].error or 'no attempt yet'}"
                for name in self._required
                if REQUIRED_ALIAS not in self._states[name].versions
            }

    def status(self) -> dict[str, str]:
        """Per secret: ``ok``, or how stale the values in use are and why (readiness shows this)."""
        now = time.monotonic()
        report: dict[str, str] = {}
        with self._lock:
            for name, state in self._states.items():
                if REQUIRED_ALIAS not in state.versions:
                    report[name] = f"not loaded: {state.error or 'no attempt yet'}"
                elif state.error is None:
                    report[name] = "ok"
                else:
                    age = now - (state.loaded_at or now)
                    report[name] = f"stale: last refreshed {age:.0f} s ago ({state.error})"
        return report

    # refreshing ------------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """One pass over every secret and alias; True when all of them answered."""
        changed = False
        all_ok = True
        for name in self._names:
            try:
                versions = {
                    alias: v for alias in ALIASES if (v := self._reader.access(name, alias)) is not None
                }
                if REQUIRED_ALIAS not in versions:
                    raise SecretsUnavailable(
                        f"{name}/{REQUIRED_ALIAS}: the alias is missing or its version is disabled"
                    )
            except SecretsUnavailable as exc:
                all_ok = False
                REFRESH_FAILURES.labels(*self._labels, name).inc()
                with self._lock:
                    self._states[name].error = str(exc)
                continue
            # Before anything can use (and log) them.
            logs.learn_secrets(v.value for v in versions.values())
            with self._lock:
                state = self._states[name]
                if {a: v.number for a, v in versions.items()} != {
                    a: v.number for a, v in state.versions.items()
                }:
                    changed = True
                state.versions, state.loaded_at, state.error = versions, time.monotonic(), None
            self._export(name, versions)
        if changed and self._on_change is not None:
            self._on_change(self.snapshot())
        if self.loaded():
            self.loaded_event.set()
        return all_ok

    def _export(self, name: str, versions: dict[str, Version]) -> None:
        LAST_REFRESH.labels(*self._labels, name).set(time.time())
        for alias in ALIASES:
            if alias in versions:
                SECRET_VERSION.labels(*self._labels, name, alias).set(float(versions[alias].number))
            else:
                with contextlib.suppress(KeyError):
                    SECRET_VERSION.remove(*self._labels, name, alias)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="secrets-refresh", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_seconds):
            try:
                self.refresh()
            except Exception as exc:  # a bug must not end refreshing; the values in use stay
                log.error("secrets refresh failed: %s", type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
