"""`ethixctl up` seeding the catalog's secrets, against the local control plane (real REST client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ethixctl.adapters.secrets import SecretManager
from ethixctl.errors import EthixError
from ethixctl.secrets import catalog
from ethixctl.secrets.seed import consumer_env, local_database_url, seed_local
from tests.ethixctl.platform.controlplane.testruntime import local_control_plane


@pytest.fixture
def secrets(tmp_path: Path) -> Iterator[SecretManager]:
    with local_control_plane(tmp_path) as (server, _):
        yield SecretManager("local", endpoint=server.url)


def test_seed_creates_each_secret_with_a_current_version_once_local_control_plane(
    secrets: SecretManager, tmp_path: Path
) -> None:
    book = catalog.load()
    assert seed_local(secrets, book, tmp_path) == ["jwt-signing-key", "session-key", "database-url"]
    assert set(secrets.list_secrets()) == {"jwt-signing-key", "session-key", "database-url", "slack-webhook"}
    assert secrets.access("jwt-signing-key", "current").startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len(secrets.access("session-key", "current")) == 43  # 32 bytes, base64url
    assert secrets.access("database-url", "current").decode() == local_database_url(tmp_path, "backend")
    assert secrets.list_versions("slack-webhook") == []  # manual: nobody can invent a webhook URL
    # Idempotent: a second `up` changes nothing.
    assert seed_local(secrets, book, tmp_path) == []
    assert [v.version for v in secrets.list_versions("jwt-signing-key")] == ["1"]


def test_seed_finishes_a_half_done_seed_without_adding_versions_local_control_plane(
    secrets: SecretManager, tmp_path: Path
) -> None:
    secrets.create_secret("session-key")
    secrets.add_version("session-key", b"added-before-a-crash")
    seed_local(secrets, catalog.load(), tmp_path)
    assert secrets.aliases("session-key") == {"current": "1"}
    assert secrets.access("session-key", "current") == b"added-before-a-crash"


def test_revisions_get_secret_names_never_values(secrets: SecretManager, tmp_path: Path) -> None:
    book = catalog.load()
    seed_local(secrets, book, tmp_path)
    env = consumer_env(book, "backend", "local", "http://127.0.0.1:9")
    assert env == {
        "ETHIX_SECRET_JWT_SIGNING_KEY": "jwt-signing-key",
        "ETHIX_SECRET_SESSION_KEY": "session-key",
        "ETHIX_SECRET_DATABASE_URL": "database-url",
        "ETHIX_ACCESS_TOKEN_TTL_SECONDS": "900",
        "ETHIX_REFRESH_TOKEN_TTL_SECONDS": "1209600",
        "ETHIX_SECRETS_PROJECT": "local",
        "ETHIX_SECRETS_ENDPOINT": "http://127.0.0.1:9",
        "ETHIX_SECRETS_REFRESH_SECONDS": "2",
    }
    names = [n for setting, n in book.consumer_env("backend").items() if setting.startswith("ETHIX_SECRET_")]
    values = {secrets.access(name, "current").decode() for name in names}
    assert not values & set(env.values())
    assert consumer_env(book, "ai-core", "local", "http://127.0.0.1:9") == {}


def test_set_aliases_moves_several_aliases_in_one_update_guarded_by_etag_local_control_plane(
    secrets: SecretManager,
) -> None:
    secrets.create_secret("k")
    for value in (b"one", b"two", b"three"):
        secrets.add_version("k", value)
    secrets.set_aliases("k", {"current": "2", "next": "3"})
    secrets.set_aliases("k", {"current": "3", "previous": "2", "next": None})
    assert secrets.aliases("k") == {"current": "3", "previous": "2"}

    # A change between our read and our write is refused, not overwritten.
    raw = secrets._client.get_secret(name="projects/local/secrets/k")
    secrets.set_alias("k", "current", "1")
    raw.version_aliases = {"current": 2}
    with pytest.raises(EthixError, match="does not match"):
        secrets._call(
            "update",
            lambda: secrets._client.update_secret(secret=raw, update_mask={"paths": ["version_aliases"]}),
        )
    assert secrets.aliases("k")["current"] == "1"
