"""The README's first command: the demo runs a good and a bad canary release on the real local platform."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ethixctl import demo
from ethixctl.cli import main
from ethixctl.ops.ledger import Ledger
from ethixctl.release import releases as release_records

pytestmark = pytest.mark.e2e


def test_demo_promotes_a_good_release_and_rolls_back_a_bad_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state_dir = tmp_path / "state"
    try:
        demo.run(str(state_dir), free_ports=True)
        ledger = Ledger(state_dir)
        try:
            releases = release_records.listed(ledger, "local", "backend")
        finally:
            ledger.close()
        assert [r.status for r in releases] == ["promoted", "rolled_back"]
        good, bad = releases
        assert "error_rate" in bad.reason or "error rate" in bad.reason
        capsys.readouterr()
        assert main(["status", "backend", "--json", "--state-dir", str(state_dir)]) == 0
        status = json.loads(capsys.readouterr().out)["services"][0]
        # The bad canary is kept at 0% for inspection; the good release's revision serves everything.
        assert status["traffic"] == {good.canary_revision: 100}
        assert status["release_in_progress"] is None
    finally:
        main(["down", "--state-dir", str(state_dir)])
