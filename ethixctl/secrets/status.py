"""`secrets list` / `secrets status`: each secret's current version, age, next due date, versions, aliases,
and the rotation in progress (with when its old version may be disabled)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ethixctl.secrets.catalog import Catalog, Secret

if TYPE_CHECKING:
    from ethixctl.adapters.secrets import SecretManager
    from ethixctl.ops.ledger import Ledger


@dataclass
class SecretStatus:
    id: str
    kind: str
    consumers: list[str]
    rotation_period_days: float | None  # None: manual
    current_version: str | None
    current_created_at: float | None
    age_days: float | None
    next_due_at: float | None
    state: str  # ok | overdue | due (grace ended) | missing | manual
    problem: str
    aliases: dict[str, str]
    versions: list[dict[str, Any]] = field(default_factory=list)
    rotation: dict[str, Any] | None = None

    @property
    def needs_action(self) -> bool:
        return self.state in ("overdue", "due", "missing")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def secret_status(
    secrets: SecretManager, ledger: Ledger, environment: str, secret: Secret, existing: set[str], now: float
) -> SecretStatus:
    from ethixctl.secrets.rotation import KIND

    versions = secrets.list_versions(secret.id) if secret.id in existing else []
    aliases = secrets.aliases(secret.id) if secret.id in existing else {}
    current = aliases.get("current")
    created = next((v.create_time.timestamp() for v in versions if v.version == current), None)
    period = secret.rotation_period if secret.scheduled else None
    due = created + float(period) if created is not None and period is not None else None
    running = ledger.in_progress(KIND, secret.id, environment)
    rotation = None
    state, problem = "ok", ""
    if running is not None:
        grace_until = running.details.get("grace_until")
        rotation = {"id": running.id, "phase": running.phase, "grace_until": grace_until}
        if running.phase == "grace" and grace_until is not None and grace_until <= now:
            state = "due"
            problem = (
                f"the grace of rotation {running.short_id} ended: `ethixctl secrets rotate {secret.id}"
                f" --resume` disables version {running.details.get('old_version')}"
            )
    if state == "ok":
        if current is None and secret.scheduled:
            state, problem = "missing", "no current version"
        elif not secret.scheduled:
            state = "manual"
        elif due is not None and due <= now:
            days = (now - due) / 86_400
            state, problem = "overdue", f"rotation overdue by {days:.1f} days"
    return SecretStatus(
        id=secret.id,
        kind=secret.kind.value,
        consumers=list(secret.consumers),
        rotation_period_days=float(period) / 86_400 if period is not None else None,
        current_version=current,
        current_created_at=created,
        age_days=(now - created) / 86_400 if created is not None else None,
        next_due_at=due,
        state=state,
        problem=problem,
        aliases=aliases,
        versions=[
            {
                "version": v.version,
                "state": v.state,
                "created_at": v.create_time.timestamp(),
                "aliases": v.aliases,
            }
            for v in versions
        ],
        rotation=rotation,
    )


def all_statuses(
    secrets: SecretManager, ledger: Ledger, environment: str, catalog: Catalog, now: float | None = None
) -> list[SecretStatus]:
    moment = time.time() if now is None else now
    existing = set(secrets.list_secrets())
    return [secret_status(secrets, ledger, environment, s, existing, moment) for s in catalog.secrets]
