"""Secret rotation as a state machine on the shared operations framework (ethixctl/ops).

Scheduled (zero downtime)::

    add_version → alias_next → await_next → promote → await_current → grace
                → [delete_old_user] → disable_old → rotated

Emergency (a leak)::

    add_version → switch → disable_others → revoke_sessions → await_switch → [delete_old_user] → rotated

Every phase is written to the ledger before it starts and after it ends (the machine does that), and
every handler is idempotent: after Ctrl-C, SIGKILL or an outage, ``--resume`` runs the interrupted
phase's handler again and it checks what is already done. A version added just before a crash is
found through ``versions_before`` (recorded at the start) instead of being left behind unrecorded.
The ledger holds version numbers, user names and times — never a value.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ethixctl.durations import format_duration
from ethixctl.errors import EthixError, UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.ops.ledger import Ledger, Operation
from ethixctl.ops.machine import Machine
from ethixctl.secrets import observe
from ethixctl.secrets.catalog import Catalog, Generator, Kind, Secret
from ethixctl.secrets.generate import new_value

if TYPE_CHECKING:
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.adapters.prometheus import Prometheus
    from ethixctl.adapters.secrets import SecretManager
    from ethixctl.config import Environment
    from ethixctl.release.notify import Notifier

KIND = "rotation"
ROTATED = "rotated"
# Waiting for revisions: ten refresh intervals, plus Prometheus scrapes and a slow instance start.
WAIT_REFRESHES = 10
WAIT_MARGIN_SECONDS = 30.0
DEFAULT_MAX_WAIT_SECONDS = 300.0
# Sessions signed or sealed with a leaked key are revoked; a leaked database password exposes none.
_REVOKES_SESSIONS = (Kind.JWT_SIGNING_KEY, Kind.SESSION_KEY)


class Phase(StrEnum):
    ADD_VERSION = "add_version"
    ALIAS_NEXT = "alias_next"
    AWAIT_NEXT = "await_next"
    PROMOTE = "promote"
    AWAIT_CURRENT = "await_current"
    GRACE = "grace"
    DELETE_OLD_USER = "delete_old_user"
    DISABLE_OLD = "disable_old"
    SWITCH = "switch"
    DISABLE_OTHERS = "disable_others"
    REVOKE_SESSIONS = "revoke_sessions"
    AWAIT_SWITCH = "await_switch"
    ROTATED = "rotated"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.ADD_VERSION: frozenset({Phase.ALIAS_NEXT, Phase.SWITCH}),
    Phase.ALIAS_NEXT: frozenset({Phase.AWAIT_NEXT}),
    Phase.AWAIT_NEXT: frozenset({Phase.PROMOTE}),
    Phase.PROMOTE: frozenset({Phase.AWAIT_CURRENT}),
    Phase.AWAIT_CURRENT: frozenset({Phase.GRACE}),
    Phase.GRACE: frozenset({Phase.DELETE_OLD_USER, Phase.DISABLE_OLD}),
    Phase.DELETE_OLD_USER: frozenset({Phase.DISABLE_OLD, Phase.ROTATED}),
    Phase.DISABLE_OLD: frozenset({Phase.ROTATED}),
    Phase.SWITCH: frozenset({Phase.DISABLE_OTHERS}),
    Phase.DISABLE_OTHERS: frozenset({Phase.REVOKE_SESSIONS}),
    Phase.REVOKE_SESSIONS: frozenset({Phase.AWAIT_SWITCH}),
    Phase.AWAIT_SWITCH: frozenset({Phase.DELETE_OLD_USER, Phase.ROTATED}),
}
FINAL = {Phase.ROTATED: ROTATED}


class GraceRemaining(EthixError):
    """The rotation is effective; the old version stays enabled until its grace ends (not a failure)."""

    exit_code = ExitCode.OK

    def __init__(self, op: Operation, until: float):
        when = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M UTC")
        super().__init__(
            f"{op.subject}: version {op.details['new_version']} is current; the old version"
            f" {op.details['old_version']} stays enabled until {when} (grace)",
            hint=f"`ethixctl secrets rotate {op.subject} --resume` after that disables it;"
            " `ethixctl secrets status` lists it as due",
        )
        self.until = until


@dataclass
class Options:
    emergency: bool = False
    value_file: Path | None = None
    max_wait: float = DEFAULT_MAX_WAIT_SECONDS
    wait_timeout: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "emergency": self.emergency,
            "value_file": str(self.value_file) if self.value_file else None,
            "max_wait": self.max_wait,
            "wait_timeout": self.wait_timeout,
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Options:
        value_file = data.get("value_file")
        return cls(
            emergency=bool(data.get("emergency")),
            value_file=Path(value_file) if value_file else None,
            max_wait=float(data.get("max_wait", DEFAULT_MAX_WAIT_SECONDS)),
            wait_timeout=data.get("wait_timeout"),
        )


@dataclass
class Platform:
    """The parts a rotation works with; each is one adapter."""

    secrets: SecretManager
    cloud_run: CloudRun
    prometheus: Prometheus
    environment: Environment


def check_possible(catalog: Catalog, secret: Secret, environment: Environment) -> None:
    """Refuse up front what cannot be done here (exit 2, nothing changed)."""
    if secret.kind is Kind.DATABASE_URL:
        if environment.kind == "local":
            raise UsageError(
                f"{secret.id}: the local platform stores its data in SQLite, which has no credentials to"
                " rotate; database users are rotated in Atlas (staging, production)"
            )
        if environment.name not in secret.atlas:
            raise UsageError(
                f"{secret.id}: the catalog has no atlas settings for environment {environment.name!r}",
                hint=f"add secrets[{catalog.ids().index(secret.id)}].atlas.{environment.name} to the catalog",
            )


def start(
    ledger: Ledger, catalog: Catalog, secret: Secret, platform: Platform, options: Options
) -> Operation:
    """Record a new rotation (nothing is changed yet): what is current, the last version number, the
    grace and, for a database URL, the user names."""
    check_possible(catalog, secret, platform.environment)
    environment = platform.environment
    running = ledger.in_progress(KIND, secret.id, environment.name)
    if running is not None:
        raise UsageError(
            f"a rotation of {secret.id} is already in progress ({running.short_id}, phase {running.phase})",
            hint=f"`ethixctl secrets rotate {secret.id} --resume` continues it",
        )
    if options.value_file is not None or secret.generate is Generator.MANUAL:
        new_value(secret, options.value_file)  # a missing or empty --value-file fails before anything
    versions = platform.secrets.list_versions(secret.id)
    aliases = platform.secrets.aliases(secret.id)
    current = aliases.get("current")
    if current is None and secret.consumers:
        raise UsageError(
            f"{secret.id} has no current version to rotate from",
            hint="`ethixctl up` seeds the local platform; elsewhere add a first version and alias it current",
        )
    details: dict[str, Any] = {
        "secret_kind": secret.kind.value,
        "consumers": secret.consumers,
        "old_version": current,
        "versions_before": max((int(v.version) for v in versions), default=0),
        "grace_seconds": catalog.grace_seconds(secret),
        "wait_timeout": options.wait_timeout or wait_timeout(catalog, environment.kind),
    }
    if secret.kind is Kind.DATABASE_URL:
        from ethixctl.secrets.atlas import username_of

        atlas = secret.atlas[environment.name]
        old_url = platform.secrets.access(secret.id, "current").decode() if current else ""
        details["old_username"] = username_of(old_url) if old_url else None
        details["new_username"] = f"{atlas.username_prefix}-{datetime.now(UTC):%Y%m%d%H%M%S}"
    return ledger.create_operation(
        KIND, secret.id, environment.name, Phase.ADD_VERSION.value, details=details, options=options.to_dict()
    )


def wait_timeout(catalog: Catalog, environment_kind: str) -> float:
    return WAIT_REFRESHES * catalog.refresh_seconds(environment_kind) + WAIT_MARGIN_SECONDS


class Rotation:
    """The handlers of one rotation: each does its phase's work and returns the next phase."""

    def __init__(
        self,
        ledger: Ledger,
        catalog: Catalog,
        platform: Platform,
        notify: Notifier,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.ledger = ledger
        self.catalog = catalog
        self.platform = platform
        self.notify = notify
        self.sleep = sleep
        self.machine: Machine[Phase] = Machine(ledger, Phase, TRANSITIONS, FINAL)

    def run(self, op: Operation) -> Operation:
        self.notify.operation = op
        handlers: dict[Phase, Callable[[Operation], Phase]] = {
            Phase.ADD_VERSION: self.add_version,
            Phase.ALIAS_NEXT: self.alias_next,
            Phase.AWAIT_NEXT: self.await_next,
            Phase.PROMOTE: self.promote,
            Phase.AWAIT_CURRENT: self.await_current,
            Phase.GRACE: self.grace,
            Phase.DELETE_OLD_USER: self.delete_old_user,
            Phase.DISABLE_OLD: self.disable_old,
            Phase.SWITCH: self.switch,
            Phase.DISABLE_OTHERS: self.disable_others,
            Phase.REVOKE_SESSIONS: self.revoke_sessions,
            Phase.AWAIT_SWITCH: self.await_switch,
        }
        return self.machine.run(op, handlers)

    # helpers ---------------------------------------------------------------------------------------

    def _secret(self, op: Operation) -> Secret:
        return self.catalog.secret(op.subject)

    def _record(self, op: Operation, **details: Any) -> None:
        self.ledger.update(op.id, details=details)

    def _say(self, kind: str, message: str, **data: Any) -> None:
        self.notify(kind, message, **data)

    def _wait(self, op: Operation, metric: str, alias: str, expected: str | None, what: str) -> float:
        """Until every serving revision of every consumer reports ``expected`` for ``alias``."""
        platform = self.platform
        consumers = list(op.details["consumers"])
        if not consumers:
            return 0.0

        def revisions() -> list[str]:
            self.machine.check_in_progress(op)
            return observe.serving_revisions(platform.cloud_run, platform.prometheus, consumers)

        def report(revs: list[str]) -> observe.Report:
            return observe.report(platform.prometheus, metric, op.subject, alias, revs, expected)

        waited = observe.wait_until_reported(
            revisions, report, timeout=float(op.details["wait_timeout"]), what=what, sleep=self.sleep
        )
        self._say(
            "loaded",
            f"{what}: every serving revision reports it ({', '.join(waited.revisions) or 'none serving'})"
            f" after {waited.seconds:.1f}s",
            revisions=waited.revisions,
            seconds=round(waited.seconds, 3),
        )
        return waited.seconds

    def _new(self, op: Operation) -> str:
        return str(op.details["new_version"])

    def _is_database(self, op: Operation) -> bool:
        return op.details["secret_kind"] == Kind.DATABASE_URL.value

    def _loaded_metric(self, op: Operation) -> str:
        # A connection secret counts once the connection uses it, not when the value arrived.
        return observe.IN_USE if self._is_database(op) else observe.LOADED

    # phases ----------------------------------------------------------------------------------------

    def add_version(self, op: Operation) -> Phase:
        emergency = Options.of(op.options).emergency
        after = Phase.SWITCH if emergency else Phase.ALIAS_NEXT
        if op.details.get("new_version"):
            return after
        secrets = self.platform.secrets
        secret = self._secret(op)
        unrecorded = sorted(
            (int(v.version) for v in secrets.list_versions(op.subject) if v.state == "ENABLED"),
        )
        unrecorded = [n for n in unrecorded if n > int(op.details["versions_before"])]
        if self._is_database(op):
            version = self._add_database_version(op, unrecorded)
        elif unrecorded:
            # Added by this rotation just before a crash: its value is good, reuse it.
            version = str(unrecorded[-1])
            self._say("version", f"{op.subject}: reusing version {version}, added before the interruption")
        else:
            version = secrets.add_version(op.subject, new_value(secret, Options.of(op.options).value_file))
            self._say("version", f"{op.subject}: added version {version}")
        self._record(op, new_version=version)
        return after

    def _add_database_version(self, op: Operation, unrecorded: list[int]) -> str:
        from ethixctl.secrets.atlas import AtlasUsers, database_url, new_password

        secrets = self.platform.secrets
        atlas = self._secret(op).atlas[self.platform.environment.name]
        # A version added before a crash holds a password this run cannot know and is about to replace.
        for number in unrecorded:
            secrets.disable_version(op.subject, str(number))
            self._say("version", f"{op.subject}: disabled version {number}, left by an interrupted run")
        username = str(op.details["new_username"])
        password = new_password()
        users = AtlasUsers(atlas)
        try:
            outcome = users.upsert(username, password)
        finally:
            users.close()
        self._say("atlas", f"{op.subject}: Atlas database user {username} {outcome}")
        version = secrets.add_version(op.subject, database_url(atlas, username, password).encode())
        self._say("version", f"{op.subject}: added version {version} (user {username})")
        return version

    def alias_next(self, op: Operation) -> Phase:
        self.platform.secrets.set_alias(op.subject, "next", self._new(op))
        self._say("alias", f"{op.subject}: next → version {self._new(op)} (verify-only)")
        return Phase.AWAIT_NEXT

    def await_next(self, op: Operation) -> Phase:
        seconds = self._wait(
            op, observe.LOADED, "next", self._new(op), f"{op.subject} version {self._new(op)}"
        )
        self._record(op, await_next_seconds=round(seconds, 3))
        return Phase.PROMOTE

    def promote(self, op: Operation) -> Phase:
        changes: dict[str, str | None] = {"current": self._new(op), "next": None}
        old = op.details.get("old_version")
        if old:
            changes["previous"] = str(old)
        self.platform.secrets.set_aliases(op.subject, changes)
        # Recorded after the move: a crash in between restarts the grace later, never earlier.
        promoted_at = time.time()
        self._record(
            op, promoted_at=promoted_at, grace_until=promoted_at + float(op.details["grace_seconds"])
        )
        self._say(
            "alias", f"{op.subject}: current → version {self._new(op)}, previous → version {old or 'none'}"
        )
        return Phase.AWAIT_CURRENT

    def await_current(self, op: Operation) -> Phase:
        seconds = self._wait(
            op,
            self._loaded_metric(op),
            "current",
            self._new(op),
            f"{op.subject} current version {self._new(op)}",
        )
        self._record(op, await_current_seconds=round(seconds, 3), signing_at=time.time())
        return Phase.GRACE

    def grace(self, op: Operation) -> Phase:
        after = Phase.DELETE_OLD_USER if self._is_database(op) else Phase.DISABLE_OLD
        if not op.details.get("old_version"):
            return after
        until = float(op.details["grace_until"])
        remaining = until - time.time()
        if remaining > Options.of(op.options).max_wait:
            raise GraceRemaining(op, until)
        if remaining > 0:
            self._say("grace", f"{op.subject}: waiting out the grace ({format_duration(round(remaining))})")
            while (remaining := until - time.time()) > 0:
                self.machine.check_in_progress(op)
                self.sleep(min(remaining, 1.0))
        return after

    def delete_old_user(self, op: Operation) -> Phase:
        from ethixctl.secrets.atlas import AtlasUsers

        after = Phase.ROTATED if Options.of(op.options).emergency else Phase.DISABLE_OLD
        username = op.details.get("old_username")
        if not username:
            return after
        users = AtlasUsers(self._secret(op).atlas[self.platform.environment.name])
        try:
            deleted = users.delete(str(username))
        finally:
            users.close()
        self._say(
            "atlas",
            f"{op.subject}: Atlas database user {username} {'deleted' if deleted else 'already gone'}",
        )
        return after

    def disable_old(self, op: Operation) -> Phase:
        old = op.details.get("old_version")
        secrets = self.platform.secrets
        if old:
            if secrets.aliases(op.subject).get("previous") == str(old):
                secrets.set_alias(op.subject, "previous", None)
            state = {v.version: v.state for v in secrets.list_versions(op.subject)}.get(str(old))
            if state == "ENABLED":
                secrets.disable_version(op.subject, str(old))
            self._say(
                "disabled",
                f"{op.subject}: version {old} disabled (it can be re-enabled, never destroyed here)",
            )
        self._record(op, finished_rotation_at=time.time())
        return Phase.ROTATED

    # emergency -------------------------------------------------------------------------------------

    def switch(self, op: Operation) -> Phase:
        self.platform.secrets.set_aliases(
            op.subject, {"current": self._new(op), "next": None, "previous": None}
        )
        if not op.details.get("switched_at"):
            self._record(op, switched_at=time.time(), switched_at_iso=datetime.now(UTC).isoformat())
        self._say(
            "alias", f"{op.subject}: EMERGENCY current → version {self._new(op)}; next and previous removed"
        )
        return Phase.DISABLE_OTHERS

    def disable_others(self, op: Operation) -> Phase:
        secrets = self.platform.secrets
        disabled = list(op.details.get("disabled_versions", []))
        for version in secrets.list_versions(op.subject):
            if version.state == "ENABLED" and version.version != self._new(op):
                secrets.disable_version(op.subject, version.version)
                disabled.append(version.version)
                self._record(op, disabled_versions=disabled)
        self._say("disabled", f"{op.subject}: disabled version(s) {', '.join(disabled) or 'none'}")
        return Phase.REVOKE_SESSIONS

    def revoke_sessions(self, op: Operation) -> Phase:
        if Kind(op.details["secret_kind"]) not in _REVOKES_SESSIONS:
            return Phase.AWAIT_SWITCH
        from services.backend.sessions import revoke_all
        from services.common.docstore import open_store

        store = open_store(self._database_url(op))
        try:
            revoked = revoke_all(
                store,
                f"emergency rotation of {op.subject} ({op.short_id})",
                created_before=op.details["switched_at_iso"],
            )
        finally:
            store.close()
        total = int(op.counters.get("sessions_revoked", 0)) + revoked
        self.ledger.update(op.id, counters={**op.counters, "sessions_revoked": total})
        self._say("sessions", f"{op.subject}: {total} session(s) revoked", sessions_revoked=total)
        return Phase.AWAIT_SWITCH

    def _database_url(self, op: Operation) -> str:
        database = next((s for s in self.catalog.secrets if s.kind is Kind.DATABASE_URL), None)
        if database is None:
            raise UsageError(
                "the catalog has no database-url secret: cannot reach the sessions to revoke them"
            )
        return self.platform.secrets.access(database.id, "current").decode()

    def await_switch(self, op: Operation) -> Phase:
        new = self._new(op)
        what = f"{op.subject}: old versions refused"
        seconds = 0.0
        if self._is_database(op):
            seconds = self._wait(
                op, observe.IN_USE, "current", new, f"{op.subject} reconnected with version {new}"
            )
        else:
            for alias, expected in (("current", new), ("next", None), ("previous", None)):
                seconds += self._wait(
                    op, observe.LOADED, alias, expected, f"{what} ({alias}: {expected or 'none'})"
                )
        refused_at = time.time()
        since_switch = refused_at - float(op.details["switched_at"])
        self._record(op, old_refused_at=refused_at, old_refused_after_seconds=round(since_switch, 3))
        revoked = int(self.ledger.operation(op.id).counters.get("sessions_revoked", 0))
        self._say(
            "page",
            f"EMERGENCY rotation of {op.subject} done: version {new} current, old versions disabled,"
            f" {revoked} session(s) revoked; the last revision stopped accepting the old key"
            f" {since_switch:.1f}s after the switch",
            sessions_revoked=revoked,
            old_refused_after_seconds=round(since_switch, 3),
        )
        return Phase.DELETE_OLD_USER if self._is_database(op) else Phase.ROTATED
