"""The database-url rotation (staging/production path) through the real state machine: the Atlas Admin API
as a wire-level fake, Secret Manager and Cloud Run as the local control plane, a real Prometheus.

The backend revision is played by an exporter that behaves like one where it matters: on each scrape it
reads the secret's aliases from Secret Manager and "reconnects" with the current URL only if Atlas has
that user with that password (else it keeps its connection: fail static), and reports the version in use
(``ethix_secret_in_use_version``) and the versions it loaded (``ethix_secret_version``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from ethixctl import procs
from ethixctl.adapters.cloudrun import CloudRun
from ethixctl.adapters.prometheus import Prometheus
from ethixctl.adapters.secrets import SecretManager
from ethixctl.config import Environment
from ethixctl.errors import UsageError
from ethixctl.ops.ledger import Ledger
from ethixctl.platform.prometheus import PrometheusServer
from ethixctl.release.notify import Event, Notifier
from ethixctl.secrets import catalog, rotation
from ethixctl.secrets.atlas import database_url
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane
from tests.httpserver import serve

from .atlasfake import FakeAtlas, fake_atlas

pytestmark = pytest.mark.e2e

SECRET = "database-url"


@dataclass
class World:
    secrets: SecretManager
    platform: rotation.Platform
    atlas: FakeAtlas
    book: catalog.Catalog
    ledger: Ledger
    events: list[Event]
    revision: str

    def run(self, op: rotation.Operation) -> rotation.Operation:
        notify = Notifier(self.ledger, op.subject, "staging", self.events.append, [])
        return rotation.Rotation(self.ledger, self.book, self.platform, notify).run(op)


def _revision_exporter(secrets: SecretManager, atlas: FakeAtlas) -> type[BaseHTTPRequestHandler]:
    in_use: dict[str, str] = {}
    lock = threading.Lock()

    def scrape() -> bytes:
        lines = ["# TYPE ethix_secret_version gauge"]
        for alias, number in sorted(secrets.aliases(SECRET).items()):
            lines.append(f'ethix_secret_version{{secret="{SECRET}",alias="{alias}"}} {number}')
        current = secrets.aliases(SECRET).get("current")
        url = urlsplit(secrets.access(SECRET, current).decode()) if current else None
        user = atlas.users.get(unquote(url.username or "")) if url else None
        with lock:
            if current and url and user and user["password"] == unquote(url.password or ""):
                in_use["version"] = current  # the new credentials work: reconnected
            if "version" in in_use:
                lines.append(f'ethix_secret_in_use_version{{secret="{SECRET}"}} {in_use["version"]}')
        return ("\n".join(lines) + "\n").encode()

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = scrape()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Exporter


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    text = catalog.DEFAULT_PATH.read_text().replace("    grace: 15m", "    grace: 1s")
    (tmp_path / "secrets.yaml").write_text(text)
    book = catalog.load(tmp_path / "secrets.yaml")
    atlas_config = book.secret(SECRET).atlas["staging"]
    server = PrometheusServer(tmp_path / "prom", procs.free_port())
    server.start(timeout=30)
    with local_control_plane(tmp_path / "cp") as (control_plane, _), fake_atlas() as atlas:
        monkeypatch.setenv("ETHIXCTL_ATLAS_BASE_URL", atlas.url)
        monkeypatch.setenv("ETHIXCTL_ATLAS_PUBLIC_KEY", atlas.public_key)
        monkeypatch.setenv("ETHIXCTL_ATLAS_PRIVATE_KEY", atlas.private_key)
        secrets = SecretManager("local", endpoint=control_plane.url)
        secrets.create_secret(SECRET)
        atlas.users["ethix-app-old"] = {"username": "ethix-app-old", "password": "old-password"}
        secrets.add_version(SECRET, database_url(atlas_config, "ethix-app-old", "old-password").encode())
        secrets.set_alias(SECRET, "current", "1")
        cloud_run = CloudRun("local", "local", endpoint=control_plane.url)
        revision = cloud_run.create_service("backend", "envserver", {}).latest_ready_revision
        assert revision
        environment = Environment(
            name="staging", kind="cloudrun", project="local", region="local", run_endpoint=control_plane.url,
            secrets_endpoint=control_plane.url, prometheus_url=server.url, state_dir=tmp_path,
        )  # fmt: skip
        with serve(_revision_exporter(secrets, atlas)) as exporter, Prometheus(server.url) as prometheus:
            server.set_target("backend", revision, exporter.removeprefix("http://"))
            deadline = time.monotonic() + 30
            while not prometheus.query("ethix_secret_in_use_version"):
                assert time.monotonic() < deadline, "Prometheus never scraped the exporter"
                time.sleep(0.5)
            platform = rotation.Platform(secrets, cloud_run, prometheus, environment)
            with Ledger(tmp_path) as ledger:
                yield World(secrets, platform, atlas, book, ledger, [], revision)
    server.stop()


def _states(world: World) -> dict[str, str]:
    return {v.version: v.state for v in world.secrets.list_versions(SECRET)}


def test_database_url_rotation_creates_a_user_waits_for_reconnect_then_deletes_the_old_one_wire_level_fake(
    world: World,
) -> None:
    op = rotation.start(
        world.ledger, world.book, world.book.secret(SECRET), world.platform, rotation.Options()
    )
    new_user = op.details["new_username"]
    assert op.details["old_username"] == "ethix-app-old" and new_user.startswith("ethix-app-")
    final = world.run(op)
    assert final.status == "rotated"
    # The new URL's credentials are the new Atlas user's; the old user is gone; the old version is off.
    url = urlsplit(world.secrets.access(SECRET, "current").decode())
    assert unquote(url.username or "") == new_user
    assert world.atlas.users[new_user]["password"] == unquote(url.password or "")
    assert "ethix-app-old" not in world.atlas.users
    assert world.secrets.aliases(SECRET) == {"current": "2"} and _states(world) == {
        "1": "DISABLED",
        "2": "ENABLED",
    }
    phases = [e["data"]["phase"] for e in world.ledger.events(op.id, "phase")]
    assert phases == [
        "add_version", "alias_next", "await_next", "promote", "await_current", "grace", "delete_old_user",
        "disable_old",
    ]  # fmt: skip
    reconnected = [e for e in world.events if e.kind == "loaded" and "current version 2" in e.message]
    assert reconnected and reconnected[0].data["revisions"] == [world.revision]
    # No password in the ledger: details, events, options.
    record = json.dumps([final.to_dict(), world.ledger.events(op.id)], default=str)
    assert unquote(url.password or "") not in record and "old-password" not in record


def test_a_crash_between_atlas_and_secret_manager_is_resumed_without_a_stale_version_wire_level_fake(
    world: World,
) -> None:
    """The interrupted run created the user and added a version whose password this run cannot know:
    the resumed phase disables that version, gives the user a new password and adds it."""
    op = rotation.start(
        world.ledger, world.book, world.book.secret(SECRET), world.platform, rotation.Options()
    )
    atlas_config = world.book.secret(SECRET).atlas["staging"]
    user = op.details["new_username"]
    world.atlas.users[user] = {"username": user, "password": "lost-with-the-crash"}
    world.secrets.add_version(SECRET, database_url(atlas_config, user, "lost-with-the-crash").encode())
    final = world.run(op)
    assert final.status == "rotated" and final.details["new_version"] == "3"
    assert _states(world) == {"1": "DISABLED", "2": "DISABLED", "3": "ENABLED"}
    url = urlsplit(world.secrets.access(SECRET, "current").decode())
    assert world.atlas.users[user]["password"] == unquote(url.password or "") != "lost-with-the-crash"
    assert (
        "PATCH",
        f"/api/atlas/v2/groups/{atlas_config.group_id}/databaseUsers/admin/{user}",
    ) in world.atlas.requests


def test_database_url_rotation_needs_atlas_settings_for_the_environment(world: World) -> None:
    world.platform.environment.name = "qa"
    with pytest.raises(UsageError, match="no atlas settings for environment 'qa'"):
        rotation.start(
            world.ledger, world.book, world.book.secret(SECRET), world.platform, rotation.Options()
        )
    assert world.ledger.operations("qa") == []
