"""``ethixctl logs`` on the services' JSON lines: --severity, --request-id, --since, --json passthrough."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ethixctl.cli import main


@dataclass(frozen=True)
class Logs:
    """A state dir whose backend log was written at ``written_at``, its entries dated minutes before.

    The dates follow the moment each test writes the log, not the moment the module was imported: a
    full run can reach this test more than ten minutes after the import, past ``--since 10m``."""

    state_dir: Path
    written_at: datetime

    def entry(self, minutes_ago: float, severity: str, message: str, request_id: str | None = None) -> str:
        moment = (self.written_at - timedelta(minutes=minutes_ago)).isoformat()
        return json.dumps(
            {"severity": severity, "message": message, "time": moment, "request_id": request_id}
        )


# In an argv below: the absolute time 45 minutes before the log was written.
AT_45_MINUTES_BEFORE = "<45 minutes before the log was written>"


@pytest.fixture
def logs(tmp_path: Path) -> Logs:
    written = Logs(tmp_path, datetime.now(UTC))
    backend = tmp_path / "logs" / "backend"
    backend.mkdir(parents=True)
    (backend / "backend-00001-abc.log").write_text(
        "\n".join(
            [
                "plain text before logging was configured",
                written.entry(120, "INFO", "Uvicorn running on http://127.0.0.1:8080"),
                written.entry(30, "WARNING", "POST /api/v1/auth/login 401", "req-1"),
                written.entry(5, "INFO", "GET /api/v1/users/me 200", "req-2"),
                written.entry(1, "ERROR", "unhandled error in GET /api/v1/users/me", "req-2"),
            ]
        )
        + "\n"
    )
    return written


def run(capsys: pytest.CaptureFixture[str], state_dir: Path, *argv: str) -> tuple[int, list[str], str]:
    code = main(["logs", "backend", "--state-dir", str(state_dir), *argv])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_entries_render_for_people(logs: Logs, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, logs.state_dir)
    assert code == 0 and len(out) == 5
    assert out[0] == "plain text before logging was configured"
    assert "WARNING" in out[2] and out[2].endswith("POST /api/v1/auth/login 401 [req-1]")


@pytest.mark.parametrize(
    ("argv", "messages"),
    [
        (["--severity", "warn"], ["POST /api/v1/auth/login 401", "unhandled error in GET /api/v1/users/me"]),
        (["--severity", "ERROR"], ["unhandled error in GET /api/v1/users/me"]),
        (["--request-id", "req-2"], ["GET /api/v1/users/me 200", "unhandled error in GET /api/v1/users/me"]),
        (["--since", "10m"], ["GET /api/v1/users/me 200", "unhandled error in GET /api/v1/users/me"]),
        (
            ["--since", AT_45_MINUTES_BEFORE],
            [
                "POST /api/v1/auth/login 401",
                "GET /api/v1/users/me 200",
                "unhandled error in GET /api/v1/users/me",
            ],
        ),
        (["--severity", "info", "--since", "1h", "-n", "1"], ["unhandled error in GET /api/v1/users/me"]),
    ],
)
def test_filters_pick_entries(
    logs: Logs, capsys: pytest.CaptureFixture[str], argv: list[str], messages: list[str]
) -> None:
    at_45 = (logs.written_at - timedelta(minutes=45)).strftime("%Y-%m-%dT%H:%M:%S")
    argv = [at_45 if arg == AT_45_MINUTES_BEFORE else arg for arg in argv]
    code, out, _ = run(capsys, logs.state_dir, *argv, "--json")
    assert code == 0
    assert [json.loads(line)["message"] for line in out] == messages


def test_json_passes_entries_through_with_their_revision(
    logs: Logs, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, logs.state_dir, "--json", "--request-id", "req-1")
    assert code == 0
    written = json.loads(logs.entry(30, "WARNING", "POST /api/v1/auth/login 401", "req-1"))
    assert json.loads(out[0]) == {**written, "revision": "backend-00001-abc"}
    code, out, _ = run(capsys, logs.state_dir, "--json", "-n", "5")
    assert json.loads(out[0]) == {
        "severity": "DEFAULT",
        "message": "plain text before logging was configured",
        "revision": "backend-00001-abc",
    }


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--severity", "loud"], "unknown severity 'loud'"),
        (["--since", "yesterday"], "neither a duration nor a time"),
    ],
)
def test_bad_filters_are_usage_errors(
    logs: Logs, capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    code, out, err = run(capsys, logs.state_dir, *argv)
    assert code == 2 and out == [] and problem in err
