"""The secrets catalog (``playbooks/secrets.yaml``) as validated data.

Per secret: its id in Secret Manager, its kind, the services that load it, how often it is rotated,
how a new value is generated, and the grace before an old version may be disabled. The grace of a
signing or session key is derived from the longest lifetime of what it signs plus the clock skew, so
changing a token lifetime here changes every grace that depends on it. Mistakes are reported as
``file:line: field: problem`` through :mod:`ethixctl.yamldoc`.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from ethixctl import PLAYBOOKS, yamldoc
from ethixctl.durations import parse_duration
from ethixctl.yamldoc import Strict

DEFAULT_PATH = PLAYBOOKS / "secrets.yaml"
# Secret Manager's rules: ids of letters, digits, '-' and '_'; aliases start with a letter, ≤ 63 chars.
SECRET_ID = r"^[A-Za-z0-9_-]{1,255}$"
ALIASES = ("current", "next", "previous")
Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class Kind(StrEnum):
    JWT_SIGNING_KEY = "jwt-signing-key"
    SESSION_KEY = "session-key"
    DATABASE_URL = "database-url"
    WEBHOOK = "webhook"
    OPAQUE = "opaque"

    @property
    def setting(self) -> str:
        """The env var that gives a consumer the *name* of this secret (never its value)."""
        return "ETHIX_SECRET_" + self.value.upper().replace("-", "_")


class Generator(StrEnum):
    ED25519 = "ed25519"  # a PKCS#8 PEM private key; verifiers get the public half from the JWKS
    RANDOM = "random"  # `bytes` random bytes, base64url
    ATLAS_USER = "atlas-user"  # a new Atlas database user with a random password; the value is its URL
    MANUAL = "manual"  # an operator provides the value (--value-file), e.g. a new Slack webhook URL


# What each kind may be generated with; a catalog that mixes them up is refused.
_GENERATORS = {
    Kind.JWT_SIGNING_KEY: {Generator.ED25519},
    Kind.SESSION_KEY: {Generator.RANDOM},
    Kind.DATABASE_URL: {Generator.ATLAS_USER},
    Kind.WEBHOOK: {Generator.MANUAL},
    Kind.OPAQUE: {Generator.RANDOM, Generator.MANUAL},
}


class Lifetime(StrEnum):
    ACCESS_TOKEN = "access_token_ttl"
    REFRESH_TOKEN = "refresh_token_ttl"


class Tokens(Strict):
    """Lifetimes the services use; the graces derived from them only hold while these match."""

    access_token_ttl: Duration = 900
    refresh_token_ttl: Duration = 14 * 86_400
    clock_skew: Duration = 60


class Refresh(Strict):
    """How often services reload their secrets; a rotation's waits are measured against it."""

    default: Duration = 60
    local: Duration = 2


class Atlas(Strict):
    """Where the database user of one environment lives (Atlas Admin API v2)."""

    group_id: str = Field(pattern=r"^[0-9a-f]{24}$")
    cluster: str = Field(min_length=1)
    host: str = Field(min_length=1, description="mongodb+srv host, e.g. cluster0.ab1cd.mongodb.net")
    database: str = "ethix"
    username_prefix: str = Field(default="ethix-app", pattern=r"^[a-z][a-z0-9-]{0,40}$")
    role: str = "readWrite"


def _grace(value: object) -> object:
    return value if value in {lifetime.value for lifetime in Lifetime} else parse_duration(value)


class Secret(Strict):
    id: str = Field(pattern=SECRET_ID)
    kind: Kind
    description: str = ""
    consumers: list[str] = Field(default_factory=list)
    # "manual": nothing is scheduled (a webhook is rotated when its owner reissues it).
    rotation_period: Annotated[float | Literal["manual"], BeforeValidator(
        lambda v: v if v == "manual" else parse_duration(v)
    )]  # fmt: skip
    generate: Generator
    bytes: int | None = Field(default=None, ge=16, le=1024)
    grace: Annotated[float | Lifetime, BeforeValidator(_grace)]
    atlas: dict[str, Atlas] = Field(default_factory=dict, description="per environment name")

    @field_validator("consumers")
    @classmethod
    def _consumers(cls, consumers: list[str]) -> list[str]:
        for name in consumers:
            if not re.match(r"^[a-z][a-z0-9-]{0,48}$", name):
                raise ValueError(f"{name!r} is not a Cloud Run service id (lowercase letters, digits, '-')")
        if len(set(consumers)) != len(consumers):
            raise ValueError("consumers must be unique")
        return consumers

    @model_validator(mode="after")
    def _shape(self) -> Secret:
        allowed = _GENERATORS[self.kind]
        if self.generate not in allowed:
            names = ", ".join(sorted(g.value for g in allowed))
            raise ValueError(f"a {self.kind.value} is generated with {names}, not {self.generate.value}")
        if self.generate is Generator.RANDOM and self.bytes is None:
            raise ValueError("generate: random needs bytes (at least 16)")
        if self.generate is not Generator.RANDOM and self.bytes is not None:
            raise ValueError("bytes only applies to generate: random")
        if self.atlas and self.kind is not Kind.DATABASE_URL:
            raise ValueError("atlas only applies to a database-url")
        if self.rotation_period != "manual" and self.rotation_period <= 0:
            raise ValueError("rotation_period must be positive (or manual)")
        return self

    @property
    def scheduled(self) -> bool:
        return self.rotation_period != "manual"


class Catalog(Strict):
    version: Literal[1]
    tokens: Tokens = Tokens()
    refresh: Refresh = Refresh()
    secrets: list[Secret] = Field(min_length=1)

    @field_validator("secrets")
    @classmethod
    def _unique(cls, secrets: list[Secret]) -> list[Secret]:
        ids = [s.id for s in secrets]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"secret ids must be unique: {', '.join(duplicates)} appear more than once")
        consumed: dict[tuple[str, Kind], str] = {}
        for secret in secrets:
            if secret.kind is Kind.OPAQUE:
                continue
            for service in secret.consumers:
                other = consumed.setdefault((service, secret.kind), secret.id)
                if other != secret.id:
                    raise ValueError(
                        f"{service} would load two {secret.kind.value} secrets ({other}, {secret.id})"
                    )
        return secrets

    def secret(self, secret_id: str) -> Secret:
        for secret in self.secrets:
            if secret.id == secret_id:
                return secret
        from ethixctl.errors import UsageError

        raise UsageError(f"unknown secret {secret_id!r}", hint=f"the catalog lists {', '.join(self.ids())}")

    def ids(self) -> list[str]:
        return [s.id for s in self.secrets]

    def grace_seconds(self, secret: Secret) -> float:
        """How long an old version must stay enabled after `current` moved away from it."""
        if isinstance(secret.grace, Lifetime):
            lifetime = getattr(self.tokens, secret.grace.value)
            return float(lifetime + self.tokens.clock_skew)
        return float(secret.grace)

    def refresh_seconds(self, environment_kind: str) -> float:
        return float(self.refresh.local if environment_kind == "local" else self.refresh.default)

    def consumer_env(self, service: str) -> dict[str, str]:
        """The names (never the values) of the secrets ``service`` loads, as its env vars, and the token
        lifetimes the graces were derived from when it signs tokens."""
        env = {
            s.kind.setting: s.id for s in self.secrets if service in s.consumers and s.kind is not Kind.OPAQUE
        }
        if Kind.JWT_SIGNING_KEY.setting in env:
            env["ETHIX_ACCESS_TOKEN_TTL_SECONDS"] = f"{self.tokens.access_token_ttl:.0f}"
        if Kind.SESSION_KEY.setting in env:
            env["ETHIX_REFRESH_TOKEN_TTL_SECONDS"] = f"{self.tokens.refresh_token_ttl:.0f}"
        return env


def load(path: str | Path | None = None) -> Catalog:
    """``path``, else ETHIXCTL_SECRETS_CATALOG, else the shipped playbooks/secrets.yaml."""
    import os

    return yamldoc.load(Catalog, path or os.environ.get("ETHIXCTL_SECRETS_CATALOG") or DEFAULT_PATH)
