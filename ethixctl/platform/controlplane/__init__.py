"""The local control plane: Cloud Run Admin API v2 and Secret Manager v1 REST subsets.

Request and answer shapes come from the installed google-cloud-run / google-cloud-secret-manager
proto-plus types, so the real client libraries (and ethixctl's production adapters) talk to it unchanged.

Implemented (project `local`, region `local`; any other project/location names work the same way):

- Cloud Run v2: `GET|POST /v2/projects/P/locations/L/services` (list, create with `?serviceId=`),
  `GET|PATCH .../services/S` (get, update; `allowMissing`, etag checked), `GET .../services/S/revisions`,
  `GET|DELETE .../revisions/R`; operations: `GET /v2/projects/P/locations/L/operations` (list,
  `filter=done=true|false`), `GET|DELETE .../operations/O`, `POST .../operations/O:wait` (at most 60 s).
  Create, update and delete take `validateOnly=true`: everything is checked, nothing changes, and the
  answer is an operation already done with the resource as the change would make it (not kept).
  Every list takes `pageSize` (default 100, at most 1000) and `pageToken`, and answers `nextPageToken`.
- Secret Manager v1: `GET|POST /v1/projects/P/secrets` (`?secretId=`), `GET|PATCH|DELETE .../secrets/S`
  (PATCH with `updateMask=versionAliases|labels|annotations`), `POST .../secrets/S:addVersion`,
  `GET .../secrets/S/versions`, `GET .../versions/V` and `GET .../versions/V:access` (V: number, `latest`,
  alias), `POST .../versions/V:enable|:disable|:destroy`.
- Atlas Admin API v2, cloud backup (`controlplane/atlas.py`): `GET /api/atlas/v2/groups/G/clusters/C`,
  `GET|POST .../clusters/C/backup/snapshots`, `GET .../backup/snapshots/ID`,
  `POST .../backup/restoreJobs`, `GET .../backup/restoreJobs/ID`, over the local snapshots in
  `STATE_DIR/backups`; a restore into the live cluster is refused.
- `GET /healthz` for readiness checks.

State: `store_dir/cloudrun.json`, `store_dir/secretmanager.json` (0600, atomic replacement) and the
Fernet key `store_dir/secretmanager.key` (0600). Operations live in memory only; finished ones
are evicted after an hour, or beyond 500. On start, `serve` finishes a change the previous control
plane left in flight, starts the revisions the stored traffic needs (revisions still running are
adopted by the runtime) and re-programs the router. `python -m ethixctl.platform.controlplane` runs it
as the platform daemon's supervised process.
"""

from ethixctl.platform.controlplane.server import ControlPlaneServer, serve

__all__ = ["ControlPlaneServer", "serve"]
