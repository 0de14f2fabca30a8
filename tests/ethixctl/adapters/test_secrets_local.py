"""ethixctl.adapters.secrets against the local control plane (real google-cloud-secret-manager REST
client, real control plane, secrets encrypted at rest in a temp state dir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ethixctl import procs
from ethixctl.adapters.secrets import SecretManager
from ethixctl.errors import EthixError, PlatformUnavailable, UsageError
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane

VALUE = b"correct-horse-battery-staple"


@pytest.fixture
def secrets(tmp_path: Path) -> Iterator[SecretManager]:
    with local_control_plane(tmp_path) as (server, _):
        yield SecretManager("local", endpoint=server.url)


def test_local_control_plane_secret_version_lifecycle(secrets: SecretManager) -> None:
    secrets.create_secret("jwt-keys")
    secrets.create_secret("jwt-keys", exist_ok=True)
    with pytest.raises(EthixError, match="already exists"):
        secrets.create_secret("jwt-keys")
    assert secrets.add_version("jwt-keys", b"old") == "1"
    assert secrets.add_version("jwt-keys", VALUE) == "2"
    assert secrets.access("jwt-keys") == VALUE
    assert secrets.access("jwt-keys", "1") == b"old"

    disabled = secrets.disable_version("jwt-keys", "2")
    assert disabled.state == "DISABLED"
    with pytest.raises(EthixError, match="DISABLED state"):
        secrets.access("jwt-keys")
    assert secrets.enable_version("jwt-keys", "2").state == "ENABLED"
    assert secrets.destroy_version("jwt-keys", "1").state == "DESTROYED"
    with pytest.raises(EthixError, match="DESTROYED state"):
        secrets.access("jwt-keys", "1")
    assert [(v.version, v.state) for v in secrets.list_versions("jwt-keys")] == [
        ("2", "ENABLED"),
        ("1", "DESTROYED"),
    ]
    assert secrets.list_secrets() == ["jwt-keys"]


def test_local_control_plane_secret_alias(secrets: SecretManager) -> None:
    secrets.create_secret("db")
    secrets.add_version("db", b"v1")
    secrets.add_version("db", b"v2")
    secrets.set_alias("db", "current", "1")
    assert secrets.access("db", "current") == b"v1"
    secrets.set_alias("db", "current", "2")
    assert secrets.access("db", "current") == b"v2"
    assert {v.version: v.aliases for v in secrets.list_versions("db")} == {"2": ["current"], "1": []}
    secrets.set_alias("db", "current", None)
    with pytest.raises(UsageError, match="unknown secret or version db/current"):
        secrets.access("db", "current")
    with pytest.raises(UsageError, match="version 9"):
        secrets.set_alias("db", "broken", "9")


def test_local_control_plane_secret_values_stay_out_of_errors_and_disk(
    secrets: SecretManager, tmp_path: Path
) -> None:
    secrets.create_secret("api")
    secrets.add_version("api", VALUE)
    secrets.disable_version("api", "1")
    with pytest.raises(EthixError) as raised:
        secrets.access("api")
    assert VALUE.decode() not in str(raised.value) and VALUE.decode() not in repr(secrets)
    for path in (tmp_path / "state").iterdir():
        assert VALUE not in path.read_bytes()
    with pytest.raises(UsageError, match="unknown secret 'nope'"):
        secrets.add_version("nope", b"x")


def test_local_control_plane_secrets_unreachable() -> None:
    secrets = SecretManager("local", endpoint=f"http://127.0.0.1:{procs.free_port()}")
    with pytest.raises(PlatformUnavailable, match="not answering"):
        secrets.access("anything")
