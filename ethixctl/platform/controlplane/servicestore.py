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


class ServiceStore:
    def __init__(self, path: Path):
        self.lock = threading.RLock()
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
        if self.busy.get(service_name) == owner:
            del self.busy[service_name]
