"""The Atlas database-user client against a wire-level fake of the Atlas Admin API v2 (Digest auth, a
service-account token, the versioned media type)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ethixctl.errors import EthixError, PlatformUnavailable
from ethixctl.secrets.atlas import AtlasUsers, database_url, username_of
from ethixctl.secrets.catalog import Atlas

from .atlasfake import FakeAtlas, fake_atlas

ATLAS = Atlas(group_id="5f1a2b3c4d5e6f7a8b9c0d1e", cluster="c0", host="c0.ab1cd.mongodb.net")


@pytest.fixture
def atlas(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAtlas]:
    with fake_atlas() as fake:
        monkeypatch.setenv("ETHIXCTL_ATLAS_BASE_URL", fake.url)
        for name in ("PUBLIC_KEY", "PRIVATE_KEY", "CLIENT_ID", "CLIENT_SECRET"):
            monkeypatch.delenv(f"ETHIXCTL_ATLAS_{name}", raising=False)
        yield fake


def _digest(monkeypatch: pytest.MonkeyPatch, atlas: FakeAtlas) -> None:
    monkeypatch.setenv("ETHIXCTL_ATLAS_PUBLIC_KEY", atlas.public_key)
    monkeypatch.setenv("ETHIXCTL_ATLAS_PRIVATE_KEY", atlas.private_key)


def test_digest_auth_creates_updates_and_deletes_a_user_wire_level_fake(
    atlas: FakeAtlas, monkeypatch: pytest.MonkeyPatch
) -> None:
    _digest(monkeypatch, atlas)
    users = AtlasUsers(ATLAS)
    assert users.upsert("ethix-app-1", "first-password") == "created"
    user = atlas.users["ethix-app-1"]
    assert user["roles"] == [{"databaseName": "ethix", "roleName": "readWrite"}]
    assert user["scopes"] == [{"name": "c0", "type": "CLUSTER"}] and user["databaseName"] == "admin"
    assert users.upsert("ethix-app-1", "second-password") == "updated"  # a resumed run
    assert atlas.users["ethix-app-1"]["password"] == "second-password"
    assert users.exists("ethix-app-1")
    assert users.delete("ethix-app-1") is True
    assert users.delete("ethix-app-1") is False and not users.exists("ethix-app-1")


def test_service_account_token_wire_level_fake(atlas: FakeAtlas, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ETHIXCTL_ATLAS_CLIENT_ID", atlas.client_id)
    monkeypatch.setenv("ETHIXCTL_ATLAS_CLIENT_SECRET", atlas.client_secret)
    AtlasUsers(ATLAS).upsert("ethix-app-2", "pw")
    assert "ethix-app-2" in atlas.users and atlas.requests[0] == ("POST", "/api/oauth/token")


def test_wrong_key_no_credentials_and_outage_are_clear_errors_without_secrets_wire_level_fake(
    atlas: FakeAtlas, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake is on loopback, where the adapter sends no credentials (the local control plane needs
    # none); production without them is refused by the adapter (tests/ethixctl/adapters).
    with pytest.raises(EthixError, match="HTTP 401"):
        AtlasUsers(ATLAS).upsert("u", "the-password")
    monkeypatch.setenv("ETHIXCTL_ATLAS_PUBLIC_KEY", atlas.public_key)
    monkeypatch.setenv("ETHIXCTL_ATLAS_PRIVATE_KEY", "wrong-private-key")
    with pytest.raises(EthixError, match="HTTP 401") as raised:
        AtlasUsers(ATLAS).upsert("u", "the-password")
    assert "wrong-private-key" not in str(raised.value) and "the-password" not in str(raised.value)
    _digest(monkeypatch, atlas)
    atlas.fail_next = 1
    with pytest.raises(PlatformUnavailable, match="HTTP 503"):
        AtlasUsers(ATLAS).upsert("u", "pw")


def test_database_url_quotes_credentials_and_username_of_never_returns_the_password() -> None:
    url = database_url(ATLAS, "ethix-app-3", "p@ss/word:")
    assert (
        url
        == "mongodb+srv://ethix-app-3:p%40ss%2Fword%3A@c0.ab1cd.mongodb.net/ethix?retryWrites=true&w=majority"
    )
    assert username_of(url) == "ethix-app-3"
    assert username_of("sqlite:///tmp/x.db") is None
