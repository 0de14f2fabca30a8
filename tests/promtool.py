"""promtool, Prometheus's own checker (Debian package ``prometheus``), for the tests that need it.

CI installs it, so there (``CI`` set) its absence fails the test; elsewhere the test skips and says why.
"""

from __future__ import annotations

import os
import shutil

import pytest


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")
    if found is not None:
        return found
    missing = "promtool (Debian package prometheus) is not installed: apt-get install -y prometheus"
    if os.environ.get("CI"):
        pytest.fail(f"{missing}; CI must run this check")
    pytest.skip(missing)
