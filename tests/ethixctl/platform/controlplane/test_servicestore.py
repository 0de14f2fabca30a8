"""The service store's one-change-at-a-time rule, with real threads and a real state file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ethixctl.platform.controlplane.servicestore import RESTORE, ServiceStore

SERVICE = "projects/local/locations/local/services/backend"


def test_a_change_waits_for_its_services_restore_not_for_another_change(tmp_path: Path) -> None:
    """Regression: a traffic change sent just after the control plane restarted was refused with "still
    applying an earlier change" while the new control plane restored the service (a loaded machine)."""
    store = ServiceStore(tmp_path / "cloudrun.json")
    with store.lock:
        store.busy[SERVICE] = RESTORE
    threading.Timer(0.3, store.release, args=(SERVICE, RESTORE)).start()
    store.await_restored(SERVICE, timeout=60)
    assert SERVICE not in store.busy  # returned because the restore ended, not on the timeout

    # Another client's change in progress is not waited for: the caller refuses the overlap at once.
    with store.lock:
        store.busy[SERVICE] = "operations/op-1"
    started = time.monotonic()
    store.await_restored(SERVICE, timeout=60)
    assert store.busy[SERVICE] == "operations/op-1" and time.monotonic() - started < 30
