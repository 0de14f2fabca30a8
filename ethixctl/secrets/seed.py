"""``ethixctl up`` seeds the catalog's secrets on the local platform: the first version, alias `current`."""

from __future__ import annotations

from pathlib import Path

from ethixctl.adapters.secrets import SecretManager
from ethixctl.secrets.catalog import Catalog, Generator, Kind
from ethixctl.secrets.generate import new_value


def local_database_url(state_dir: Path, service: str) -> str:
    """The SQLite file a local revision of ``service`` uses (its ETHIX_DATA_DIR is data/SERVICE)."""
    return f"sqlite://{(state_dir / 'data' / service).resolve() / 'ethix.db'}"


def seed_local(secrets: SecretManager, catalog: Catalog, state_dir: Path) -> list[str]:
    """Create what is missing, idempotently (a crash halfway is finished by the next ``up``).

    Returns the ids seeded. Manual secrets (a webhook) are created empty: nobody can invent their value.
    """
    existing = set(secrets.list_secrets())
    seeded: list[str] = []
    for secret in catalog.secrets:
        if secret.id not in existing:
            secrets.create_secret(secret.id, exist_ok=True)
        if secret.generate is Generator.MANUAL or "current" in secrets.aliases(secret.id):
            continue
        enabled = [v.version for v in secrets.list_versions(secret.id) if v.state == "ENABLED"]
        if enabled:
            version = max(enabled, key=int)
        elif secret.kind is Kind.DATABASE_URL:
            owner = secret.consumers[0] if secret.consumers else "backend"
            version = secrets.add_version(secret.id, local_database_url(state_dir, owner).encode())
        else:
            version = secrets.add_version(secret.id, new_value(secret))
        secrets.set_alias(secret.id, "current", version)
        seeded.append(secret.id)
    return seeded


def consumer_env(catalog: Catalog, service: str, project: str, endpoint: str) -> dict[str, str]:
    """What a local revision of ``service`` is told about its secrets: names, project, endpoint — no value."""
    names = catalog.consumer_env(service)
    if not names:
        return {}
    return {
        **names,
        "ETHIX_SECRETS_PROJECT": project,
        "ETHIX_SECRETS_ENDPOINT": endpoint,
        "ETHIX_SECRETS_REFRESH_SECONDS": f"{catalog.refresh_seconds('local'):g}",
    }
