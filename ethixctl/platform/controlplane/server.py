"""The HTTP front of the control plane: a stdlib ThreadingHTTPServer routing the REST paths the
google client libraries use (checked against their `transports/rest_base.py`).

Run locally with project `local` and region `local`. Request bodies are parsed with the proto-plus
types (`ignore_unknown_fields`), answers are their `to_json`, errors are google.rpc-style bodies.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from google.cloud import run_v2
from google.cloud import secretmanager_v1 as sm
from google.longrunning import operations_pb2
from google.protobuf import json_format

from ethixctl.platform.controlplane import apierror
from ethixctl.platform.controlplane.apierror import ApiError
from ethixctl.platform.controlplane.atlas import LocalAtlas
from ethixctl.platform.controlplane.cloudrun import CloudRun
from ethixctl.platform.controlplane.paging import Page
from ethixctl.platform.controlplane.secretmanager import SecretManager
from ethixctl.platform.controlplane.store import message_to_dict as _msg
from ethixctl.platform.runtime import Runtime

PROJECT = "local"
REGION = "local"
_SEG = r"[^/:]+"
_LOC = rf"/v2/(?P<loc>projects/{_SEG}/locations/{_SEG})"
_PRJ = rf"/v1/(?P<prj>projects/{_SEG})"


@dataclass
class Request:
    method: str
    match: re.Match[str]
    query: dict[str, str]
    body: str

    def __getitem__(self, group: str) -> str:
        return unquote(self.match.group(group))


Route = tuple[str, str, Callable[[Request], Any]]


class ControlPlane:
    """Dispatches a request to the Cloud Run, Secret Manager or Atlas backup state; returns a JSON-able
    answer."""

    def __init__(self, store_dir: Path, runtime: Runtime, startup_timeout: float):
        self.secrets = SecretManager(store_dir / "secretmanager.json", store_dir / "secretmanager.key")
        self.cloudrun = CloudRun(store_dir / "cloudrun.json", runtime, self.secrets, startup_timeout)
        self.atlas = _local_atlas(store_dir.parent)
        run, sec, ops = self.cloudrun, self.secrets, self.cloudrun.operations
        svc = rf"{_LOC}/services/(?P<svc>{_SEG})"
        op = rf"{_LOC}/operations/(?P<op>{_SEG})"
        rev = rf"{svc}/revisions/(?P<rev>{_SEG})"
        secret = rf"{_PRJ}/secrets/(?P<sec>{_SEG})"
        version = rf"{secret}/versions/(?P<ver>{_SEG})"
        self.routes: list[Route] = [
            (
                "GET",
                rf"{_LOC}/services",
                lambda r: _listed("services", run.list_services(r["loc"], *_paging(r)), _msg),
            ),
            (
                "POST",
                rf"{_LOC}/services",
                lambda r: _op(
                    run.create_service(
                        r["loc"],
                        r.query.get("serviceId", ""),
                        _parse(run_v2.Service, r.body),
                        _flag(r, "validateOnly"),
                    )
                ),
            ),
            ("GET", svc, lambda r: _msg(run.get_service(_svc(r)))),
            (
                "PATCH",
                svc,
                lambda r: _op(
                    run.update_service(
                        _svc(r),
                        _parse(run_v2.Service, r.body),
                        _flag(r, "allowMissing"),
                        _flag(r, "validateOnly"),
                    )
                ),
            ),
            (
                "GET",
                rf"{svc}/revisions",
                lambda r: _listed("revisions", run.list_revisions(_svc(r), *_paging(r)), _msg),
            ),
            ("GET", rev, lambda r: _msg(run.get_revision(_rev(r)))),
            (
                "DELETE",
                rev,
                lambda r: _op(
                    run.delete_revision(_rev(r), r.query.get("etag", ""), _flag(r, "validateOnly"))
                ),
            ),
            (
                "GET",
                rf"{_LOC}/operations",
                lambda r: _listed(
                    "operations",
                    ops.list(r["loc"], r.query.get("filter", ""), *_paging(r)),
                    _op,
                ),
            ),
            ("GET", op, lambda r: _op(ops.get(_opname(r)))),
            ("DELETE", op, lambda r: _empty(ops.delete, _opname(r))),
            ("POST", rf"{op}:wait", lambda r: _op(ops.wait(_opname(r), _wait_timeout(r.body)))),
            ("GET", rf"{_PRJ}/secrets", lambda r: {"secrets": [_msg(s) for s in sec.list_secrets(r["prj"])]}),
            (
                "POST",
                rf"{_PRJ}/secrets",
                lambda r: _msg(
                    sec.create_secret(r["prj"], r.query.get("secretId", ""), _parse(sm.Secret, r.body))
                ),
            ),
            ("GET", secret, lambda r: _msg(sec.get_secret(_sec(r)))),
            ("DELETE", secret, lambda r: _empty(sec.delete_secret, _sec(r))),
            (
                "PATCH",
                secret,
                lambda r: _msg(
                    sec.update_secret(
                        _sec(r), _parse(sm.Secret, r.body), _mask(r.query.get("updateMask", ""))
                    )
                ),
            ),
            (
                "POST",
                rf"{secret}:addVersion",
                lambda r: _msg(sec.add_version(_sec(r), _parse(sm.AddSecretVersionRequest, r.body).payload)),
            ),
            ("GET", rf"{secret}/versions", lambda r: _versions(sec.list_versions(_sec(r)))),
            ("GET", version, lambda r: _msg(sec.get_version(_ver(r)))),
            ("GET", rf"{version}:access", lambda r: _msg(sec.access(_ver(r)))),
            (
                "POST",
                rf"{version}:(?P<action>enable|disable|destroy)",
                lambda r: _msg(
                    sec.change_state(
                        _ver(r), r["action"], _parse(sm.DisableSecretVersionRequest, r.body).etag
                    )
                ),
            ),
        ]
        self.routes += self.atlas.routes()
        self.compiled = [(m, re.compile(p + "$"), h) for m, p, h in self.routes]

    def dispatch(self, method: str, target: str, body: str) -> tuple[int, Any]:
        parts = urlsplit(target)
        if method == "GET" and parts.path == "/healthz":
            return 200, {"status": "ok"}
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        allowed = False
        for route_method, pattern, handler in self.compiled:
            match = pattern.match(parts.path)
            if match is None:
                continue
            allowed = True
            if route_method == method:
                try:
                    return 200, handler(Request(method, match, query, body))
                except ApiError as exc:
                    return exc.http_status, exc.body()
        if allowed:
            return 405, ApiError(405, "UNIMPLEMENTED", f"{method} is not supported on {parts.path}").body()
        return 404, apierror.not_found(
            f"the local control plane does not implement {method} {parts.path}"
        ).body()


def _local_atlas(state_dir: Path) -> LocalAtlas:
    """The Atlas subset over this state dir's snapshots, with the DR playbook's local cluster."""
    from ethixctl.dr import playbook

    book = playbook.load()
    return LocalAtlas(state_dir, book.target("local").cluster, book.retention.snapshots)


def _parse(kind: Any, body: str) -> Any:
    try:
        return kind.from_json(body or "{}", ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError) as exc:
        raise apierror.invalid_argument(f"invalid request body: {exc}") from None


def _empty(call: Callable[[str], None], name: str) -> dict[str, Any]:
    """Delete calls answer google.protobuf.Empty."""
    call(name)
    return {}


def _op(operation: Any) -> dict[str, Any]:
    return dict(json.loads(json_format.MessageToJson(operation)))


def _listed(field: str, page: Page[Any], render: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    answer: dict[str, Any] = {field: [render(item) for item in page.items]}
    if page.next_token:
        answer["nextPageToken"] = page.next_token
    return answer


def _paging(r: Request) -> tuple[int, str]:
    raw = r.query.get("pageSize", "0")
    try:
        size = int(raw)
    except ValueError:
        raise apierror.invalid_argument(f"pageSize must be an integer, got {raw!r}") from None
    return size, r.query.get("pageToken", "")


def _flag(r: Request, name: str) -> bool:
    return r.query.get(name) == "true"


def _wait_timeout(body: str) -> float | None:
    request = operations_pb2.WaitOperationRequest()
    try:
        json_format.Parse(body or "{}", request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise apierror.invalid_argument(f"invalid request body: {exc}") from None
    return request.timeout.ToTimedelta().total_seconds() if request.HasField("timeout") else None


def _versions(versions: list[sm.SecretVersion]) -> dict[str, Any]:
    return {"versions": [_msg(v) for v in versions], "totalSize": len(versions)}


def _mask(mask: str) -> list[str]:
    return [field.strip() for field in mask.split(",") if field.strip()]


def _svc(r: Request) -> str:
    return f"{r['loc']}/services/{r['svc']}"


def _rev(r: Request) -> str:
    return f"{_svc(r)}/revisions/{r['rev']}"


def _opname(r: Request) -> str:
    return f"{r['loc']}/operations/{r['op']}"


def _sec(r: Request) -> str:
    return f"{r['prj']}/secrets/{r['sec']}"


def _ver(r: Request) -> str:
    return f"{_sec(r)}/versions/{r['ver']}"


def _handler_class(plane: ControlPlane) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            try:
                status, answer = plane.dispatch(self.command, self.path, body)
            except Exception as exc:  # an unexpected bug answers 500 instead of dropping the connection
                status, answer = 500, ApiError(500, "INTERNAL", f"{type(exc).__name__}: {exc}").body()
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle

        def log_message(self, format: str, *args: Any) -> None:
            # Every LRO poll would log a line on the daemon's stderr; the state files are the audit trail.
            return

    return Handler


class _Server(ThreadingHTTPServer):
    """Keeps its open connections, so that stopping it closes the keep-alive ones too: a client must
    not go on talking to a stopped control plane through a connection it opened before."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class ControlPlaneServer:
    def __init__(self, plane: ControlPlane, httpd: _Server):
        self.plane = plane
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="controlplane", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def shutdown(self) -> None:
        self.plane.cloudrun.shutdown()
        self.plane.atlas.shutdown()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._thread.join(5)


def serve(
    store_dir: Path,
    runtime: Runtime,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    startup_timeout: float = 120.0,
    snapshot_every: float | None = None,
) -> ControlPlaneServer:
    """Start the control plane in a background thread; stored services get their revisions restarted.

    With ``snapshot_every`` (seconds), the live cluster is snapshotted on that schedule.
    """
    store_dir.mkdir(parents=True, exist_ok=True)
    plane = ControlPlane(store_dir, runtime, startup_timeout)
    httpd = _Server((host, port), _handler_class(plane))
    server = ControlPlaneServer(plane, httpd)
    plane.cloudrun.restore()
    if snapshot_every is not None:
        plane.atlas.start_schedule(snapshot_every)
    return server
