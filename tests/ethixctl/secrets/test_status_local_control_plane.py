"""`secrets list/status` data against the local control plane and a real ledger: ok, overdue, missing,
manual, and a rotation whose grace ended (due)."""

from __future__ import annotations

import time
from pathlib import Path

from ethixctl.adapters.secrets import SecretManager
from ethixctl.ops.ledger import Ledger
from ethixctl.secrets import catalog
from ethixctl.secrets.seed import seed_local
from ethixctl.secrets.status import all_statuses
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane


def test_states_from_versions_ages_and_the_ledger_local_control_plane(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(catalog.DEFAULT_PATH.read_text().replace("rotation_period: 90d", "rotation_period: 1d"))
    book = catalog.load(path)
    with local_control_plane(tmp_path) as (server, _), Ledger(tmp_path) as ledger:
        secrets = SecretManager("local", endpoint=server.url)
        seed_local(secrets, book, tmp_path)
        secrets.set_alias("session-key", "current", None)
        ledger.create_operation(
            "rotation",
            "jwt-signing-key",
            "local",
            "grace",
            details={"grace_until": time.time() - 5, "old_version": "1"},
        )
        now = time.time()
        states = {s.id: s for s in all_statuses(secrets, ledger, "local", book, now)}
        later = {s.id: s for s in all_statuses(secrets, ledger, "local", book, now + 2 * 86_400)}
    assert (
        states["jwt-signing-key"].state == "due"
        and "--resume` disables version 1" in states["jwt-signing-key"].problem
    )
    assert states["session-key"].state == "missing" and states["session-key"].needs_action
    assert states["database-url"].state == "ok" and states["database-url"].current_version == "1"
    assert states["database-url"].next_due_at is not None
    assert (
        abs(states["database-url"].next_due_at - (states["database-url"].current_created_at or 0) - 86_400)
        < 1
    )
    assert states["slack-webhook"].state == "manual" and not states["slack-webhook"].needs_action
    assert later["database-url"].state == "overdue" and "overdue by 1.0 days" in later["database-url"].problem
    assert later["database-url"].versions == [
        {
            "version": "1",
            "state": "ENABLED",
            "created_at": later["database-url"].current_created_at,
            "aliases": ["current"],
        }
    ]
