"""The Cloud Run resources the control plane holds: services, revisions, revision counters.

One JSON file, replaced atomically on every change. The API and the reconciler both work on it and
hold `lock` while they read or change it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from google.cloud import run_v2

from ethixctl.adapters.cloudrun_names import parse_service, short
from ethixctl.platform.controlplane import apierror
from ethixctl.platform.controlplane.store import message_from_dict, message_to_dict, read_json, write_json

# The `busy` owner of a service whose revisions are being restarted after a control-plane restart.
RESTORE = "restore"
# How long a change waits for its service's restore instead of being refused (a restore re-programs the
# router and restarts what the stored traffic needs: seconds, more on a loaded machine).
RESTORE_WAIT = 30.0


class ServiceStore:
    def __init__(self, path: Path):
        self.lock = threading.RLock()
        # Notified whenever a service is released (see `await_restored`).
        self.released = threading.Condition(self.lock)
        self._path = path
        data = read_json(path) or {}
        self.services: dict[str, run_v2.Service] = {
            n: message_from_dict(run_v2.Service, v) for n, v in data.get("services", {}).items()
        }
        self.revisions: dict[str, run_v2.Revision] = {
            n: message_from_dict(run_v2.Revision, v) for n, v in data.get("revisions", {}).items()
        }
        self.counters: dict[str, int] = dict(data.get("counters", {}))
        # service name -> the operation (or RESTORE) applying a change to it; one at a time.
        # A change that was in flight when the previous control plane stopped stays `reconciling`:
        # the reconciler's restore finishes it (the revision may well be starting, or running).
        self.busy: dict[str, str] = {}

    def save(self) -> None:
        write_json(
            self._path,
            {
                "services": {n: message_to_dict(s) for n, s in self.services.items()},
                "revisions": {n: message_to_dict(r) for n, r in self.revisions.items()},
                "counters": self.counters,
            },
        )

    def service(self, name: str) -> run_v2.Service:
        service = self.services.get(name)
        if service is None:
            parsed = parse_service(name)
            raise apierror.not_found(
                f"Resource '{parsed.service}' of kind 'SERVICE' in region '{parsed.location}' "
                f"in project '{parsed.project}' does not exist."
            )
        return service

    def revision(self, name: str) -> run_v2.Revision:
        revision = self.revisions.get(name)
        if revision is None:
            raise apierror.not_found(f"Revision '{short(name)}' does not exist.")
        return revision

    def release(self, service_name: str, owner: str) -> None:
        """`owner` (an operation, or RESTORE) is done with the service: it takes changes again."""
        with self.lock:
            if self.busy.get(service_name) == owner:
                del self.busy[service_name]
                self.released.notify_all()

    def await_restored(self, service_name: str, timeout: float = RESTORE_WAIT) -> None:
        """Wait (the lock released meanwhile) while the control plane restores the service after its own
        restart: a client's change sent then waits for it rather than being refused as overlapping,
        since no other change is in progress. Another client's change in progress is still refused."""
        with self.lock:
            self.released.wait_for(lambda: self.busy.get(service_name) != RESTORE, timeout)
