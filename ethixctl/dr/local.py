"""Where the local platform keeps DR data: one answer for the control plane and for the CLI.

Clusters are SQLite files. The live one is what the backend serves from (``data/backend/ethix.db``
until ``ethixctl restore --switch`` points it at a restored cluster, recorded in ``dr/live.json``);
any other cluster name is ``dr/clusters/<name>/ethix.db``. Buckets are local versioned directories.
"""

from __future__ import annotations

import json
from pathlib import Path

from ethixctl.files import write_atomic

GROUP = "local"
SERVICE = "backend"


def backups_url(state_dir: Path) -> str:
    return f"file://{state_dir / 'backups'}"


def live_bucket_url(state_dir: Path, service: str = SERVICE) -> str:
    return f"file://{state_dir / 'data' / service / 'bucket'}"


def scratch_bucket_url(state_dir: Path) -> str:
    return f"file://{state_dir / 'dr' / 'scratch-bucket'}"


def cluster_path(state_dir: Path, cluster: str) -> Path:
    return state_dir / "dr" / "clusters" / cluster / "ethix.db"


def live_database_url(state_dir: Path, service: str = SERVICE) -> str:
    try:
        return str(json.loads((state_dir / "dr" / "live.json").read_text())["database_url"])
    except (OSError, ValueError, KeyError):
        return f"sqlite://{state_dir / 'data' / service / 'ethix.db'}"


def set_live_database_url(state_dir: Path, url: str) -> None:
    write_atomic(state_dir / "dr" / "live.json", json.dumps({"database_url": url}))


def database_url(state_dir: Path, cluster: str, live_cluster: str) -> str:
    """The SQLite URL behind a local cluster name."""
    if cluster == live_cluster:
        return live_database_url(state_dir)
    return f"sqlite://{cluster_path(state_dir, cluster)}"
