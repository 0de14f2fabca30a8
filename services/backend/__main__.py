"""``python -m services.backend``: serve on ``PORT`` like a Cloud Run container."""

from __future__ import annotations

import sys

from services.backend.settings import SettingsError, load_settings
from services.common.server import run


def main() -> int:
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"backend: {exc}", file=sys.stderr)
        return 2
    run("services.backend.app:create_app", settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
