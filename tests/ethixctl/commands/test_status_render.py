"""How `ethixctl status` shows what it collected (no platform: the data is given)."""

from __future__ import annotations

from typing import Any

import pytest

from ethixctl.commands.status import _render

REVISION = {
    "name": "backend-00001-abc",
    "percent": 100,
    "tags": [],
    "ready": True,
    "serving": False,
    "restarts": 0,
    "prometheus": "up",
    "image": "local/backend@sha256:0123456789abcdef",
    "message": "not serving: readiness probe failed 2 times in a row (HTTP 503)",
}
ALERT = {
    "name": "ServiceNotReady",
    "service": "backend",
    "revision": "backend-00001-abc",
    "severity": "page",
    # Prometheus fills the summary from labels: server text, never markup.
    "summary": "backend-00001-abc [bold]fails[/bold] 100% of its readiness probes",
    "runbook": "playbooks/alerts.md#servicenotready",
    "since": "2025-01-01T10:00:00Z",
}


def _data(alerts: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {
        "environment": "local",
        "platform": None,
        "alerts": alerts,
        "services": [{"name": "backend", "url": "http://127.0.0.1:8080", "revisions": [REVISION]}],
    }


def test_firing_alerts_are_a_table_of_literal_text(capsys: pytest.CaptureFixture[str]) -> None:
    _render(_data([ALERT]))
    out = capsys.readouterr().out
    assert "firing alerts" in out
    [row] = [line for line in out.splitlines() if "ServiceNotReady" in line]
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells == [ALERT["name"], ALERT["revision"], ALERT["since"], ALERT["summary"], ALERT["runbook"]]
    # readiness failing: deployed and ready, but the router sends it nothing
    assert "not serving" in out


def test_no_alerts_no_table_and_unknown_alerts_said_so(capsys: pytest.CaptureFixture[str]) -> None:
    _render(_data([]))
    out, err = capsys.readouterr()
    assert "firing alerts" not in out and "alerts" not in err
    _render(_data(None))
    out, err = capsys.readouterr()
    assert "firing alerts" not in out
    assert "firing alerts unknown" in err
