"""The secrets catalog: the shipped file says what the runbook says; mistakes name file:line: field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.errors import PlaybookError, UsageError
from ethixctl.exitcodes import ExitCode
from ethixctl.secrets import catalog
from ethixctl.secrets.catalog import Generator, Kind

SHIPPED = catalog.DEFAULT_PATH.read_text()


def test_shipped_catalog_matches_the_runbook() -> None:
    book = catalog.load()
    jwt = book.secret("jwt-signing-key")
    assert (jwt.kind, jwt.generate, jwt.rotation_period) == (
        Kind.JWT_SIGNING_KEY,
        Generator.ED25519,
        180 * 86_400,
    )
    assert book.grace_seconds(jwt) == 15 * 60 + 60  # the longest access token plus clock skew
    session = book.secret("session-key")
    assert session.rotation_period == 90 * 86_400 and session.bytes == 32
    assert book.grace_seconds(session) == 14 * 86_400 + 60
    assert book.secret("database-url").atlas["production"].cluster == "ethix-production"
    assert not book.secret("slack-webhook").scheduled
    assert book.consumer_env("backend") == {
        "ETHIX_SECRET_JWT_SIGNING_KEY": "jwt-signing-key",
        "ETHIX_SECRET_SESSION_KEY": "session-key",
        "ETHIX_SECRET_DATABASE_URL": "database-url",
        # The services sign with the lifetimes the graces are derived from.
        "ETHIX_ACCESS_TOKEN_TTL_SECONDS": "900",
        "ETHIX_REFRESH_TOKEN_TTL_SECONDS": "1209600",
    }
    assert book.consumer_env("ai-core") == {}


def test_a_token_lifetime_change_moves_every_grace_derived_from_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text(SHIPPED.replace("access_token_ttl: 15m", "access_token_ttl: 5m"))
    book = catalog.load(path)
    assert book.grace_seconds(book.secret("jwt-signing-key")) == 5 * 60 + 60


def test_unknown_secret_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown secret 'jwt'") as raised:
        catalog.load().secret("jwt")
    assert raised.value.hint is not None and "jwt-signing-key" in raised.value.hint


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "problem"),
    [
        ("rotation_period: 180d", "rotation_period: 180 days", 21, "secrets.0.rotation_period",
         "not a duration"),
        ("generate: ed25519", "generate: random", 17, "secrets.0", "generated with ed25519, not random"),
        ("    bytes: 32\n", "", 26, "secrets.1", "random needs bytes"),
        ("kind: webhook", "kind: password", 55, "secrets.3.kind", "Input should be"),
        ("consumers: [backend]\n    rotation_period: 90d\n    generate: random",
         "consumers: [Backend]\n    rotation_period: 90d\n    generate: random", 29, "secrets.1.consumers",
         "not a Cloud Run service id"),
        ("  - id: session-key", "  - id: jwt-signing-key", 16, "secrets", "jwt-signing-key appear more"),
        ("grace: 15m", "grace: soon", 43, "secrets.2.grace", "not a duration"),
        ("group_id: 5f1a2b3c4d5e6f7a8b9c0d1e", "group_id: staging", 46, "secrets.2.atlas.staging.group_id",
         "should match pattern"),
        ("  clock_skew: 1m ", "  clock_skew: -1m ", 9, "tokens.clock_skew", "not a duration"),
        ("version: 1", "version: 2", 4, "version", "Input should be 1"),
    ],
)  # fmt: skip
def test_mistakes_are_reported_with_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, problem: str
) -> None:
    assert old in SHIPPED, old
    path = tmp_path / "secrets.yaml"
    path.write_text(SHIPPED.replace(old, new, 1))
    with pytest.raises(PlaybookError) as raised:
        catalog.load(path)
    error = raised.value
    assert error.exit_code == ExitCode.USAGE
    assert (error.path, error.line, error.field) == (str(path), line, field), error.message
    assert problem in error.problem
    assert error.message.startswith(f"{path}:{line}: {field}: ")
