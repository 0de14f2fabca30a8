"""Environments: precedence (flags > env vars > ethixctl.toml > defaults) and config file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ethixctl.config import resolve_environment
from ethixctl.errors import PlatformUnavailable, PlaybookError, UsageError
from ethixctl.platform import state

CONFIG = """\
default_env = "staging"

[environments.staging]
kind = "cloudrun"
project = "ethix-staging"
region = "europe-west1"
prometheus_url = "https://prom.staging.example"
slack_webhook = "https://hooks.slack.com/services/T0/B0/supersecret"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "ETHIXCTL_ENV",
        "ETHIXCTL_STATE_DIR",
        "ETHIXCTL_CONFIG",
        "ETHIXCTL_PROMETHEUS_URL",
        "ETHIXCTL_SLACK_WEBHOOK",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_toml_default_env_and_secret_hidden_in_repr(tmp_path: Path) -> None:
    (tmp_path / "ethixctl.toml").write_text(CONFIG)
    env = resolve_environment()
    assert (env.name, env.kind, env.project, env.region) == (
        "staging",
        "cloudrun",
        "ethix-staging",
        "europe-west1",
    )
    assert env.prometheus_url == "https://prom.staging.example"
    assert env.run_endpoint is None
    assert env.slack_webhook is not None and "supersecret" in env.slack_webhook
    assert "supersecret" not in repr(env) and "***" in repr(env)


def test_flags_beat_env_vars_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "ethixctl.toml").write_text(CONFIG)
    monkeypatch.setenv("ETHIXCTL_PROMETHEUS_URL", "http://prom.override:9090")
    monkeypatch.setenv("ETHIXCTL_SLACK_WEBHOOK", "https://hooks.example/from-env")
    monkeypatch.setenv("ETHIXCTL_STATE_DIR", str(tmp_path / "from-env"))
    env = resolve_environment()
    assert env.prometheus_url == "http://prom.override:9090"
    assert env.slack_webhook == "https://hooks.example/from-env"
    assert env.state_dir == (tmp_path / "from-env").resolve()
    assert resolve_environment(state_dir=tmp_path / "flag").state_dir == (tmp_path / "flag").resolve()
    monkeypatch.setenv("ETHIXCTL_ENV", "local")
    with pytest.raises(PlatformUnavailable) as info:
        resolve_environment()
    assert info.value.hint is not None and "ethixctl up" in info.value.hint


def test_local_reads_running_platform(tmp_path: Path) -> None:
    """A live daemon is recognised by its pid and command line; here the test process stands in."""
    import subprocess
    import sys

    state_dir = (tmp_path / "st").resolve()
    state_dir.mkdir()
    fake_daemon = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(60)",
            state.DAEMON_MODULE,
            "--state-dir",
            str(state_dir),
        ]
    )
    try:
        (state_dir / state.PID_FILE).write_text(str(fake_daemon.pid))
        state.write_json(
            state_dir / state.PLATFORM_FILE,
            {"control_plane_url": "http://127.0.0.1:1111", "prometheus_url": "http://127.0.0.1:2222"},
        )
        env = resolve_environment("local", state_dir=state_dir)
        assert (env.kind, env.project, env.region) == ("local", "local", "local")
        assert env.run_endpoint == env.secrets_endpoint == "http://127.0.0.1:1111"
        assert env.prometheus_url == "http://127.0.0.1:2222"
    finally:
        fake_daemon.kill()
        fake_daemon.wait()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[environments.prod]\nkind = "cloudrun"\nproject = "p"\nregion = "r"\nprometheus_url = 9\n',
            ":5: environments.prod.prometheus_url: must be a string",
        ),
        ('[environments.prod]\nkind = "k8s"\n', ":2: environments.prod.kind: must be one of local, cloudrun"),
        (
            '[environments.prod]\nkind = "cloudrun"\nregion = "r"\n',
            ":1: environments.prod: project: required",
        ),
        ('[environments.prod]\nkind = "cloudrun"\nzone = "x"\n', ":3: environments.prod.zone: unknown field"),
        ("[environments.prod\n", "invalid TOML"),
        (
            '[environments.prod]\nkind = "cloudrun"\nproject = "p"\nregion = "r"\nprometheus_url = "u"\n'
            'prometheus_auth = "oauth"\n',
            ":6: environments.prod.prometheus_auth: must be one of none, google, bearer, basic",
        ),
        (
            '[environments.prod]\nkind = "cloudrun"\nproject = "p"\nregion = "r"\nprometheus_url = "u"\n'
            'prometheus_auth = "bearer"\n',
            ":1: environments.prod: prometheus_secret: required for prometheus_auth",
        ),
        (
            '[environments.prod]\nkind = "local"\nprometheus_url = "managed"\n',
            ':1: environments.prod: prometheus_url: "managed" needs kind = "cloudrun"',
        ),
        (
            '[environments.prod]\nmetric_source = "stackdriver"\n',
            ":2: environments.prod.metric_source: must be one of app, cloudrun, got 'stackdriver'",
        ),
    ],
)
def test_bad_config_names_file_line_and_field(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "ethixctl.toml"
    path.write_text(text)
    with pytest.raises(PlaybookError) as info:
        resolve_environment("prod")
    assert str(path) in info.value.message
    assert expected in info.value.message


def test_unknown_environment_and_missing_explicit_file(tmp_path: Path) -> None:
    (tmp_path / "ethixctl.toml").write_text(CONFIG)
    with pytest.raises(UsageError, match="unknown environment 'prod'"):
        resolve_environment("prod")
    with pytest.raises(UsageError, match="not found"):
        resolve_environment(config_path=tmp_path / "missing.toml")


def test_managed_prometheus_resolves_to_the_projects_promql_api(tmp_path: Path) -> None:
    (tmp_path / "ethixctl.toml").write_text(
        '[environments.production]\nkind = "cloudrun"\nproject = "ethix-prod"\nregion = "europe-west1"\n'
        'prometheus_url = "managed"\n'
    )
    env = resolve_environment("production")
    assert env.prometheus_url == (
        "https://monitoring.googleapis.com/v1/projects/ethix-prod/location/global/prometheus"
    )
    assert env.prometheus_auth == "google"


def test_self_hosted_prometheus_credential_is_a_secret_reference(tmp_path: Path) -> None:
    (tmp_path / "ethixctl.toml").write_text(
        CONFIG + 'prometheus_auth = "basic"\nprometheus_secret = "prometheus-basic:current"\n'
    )
    env = resolve_environment()
    assert (env.prometheus_auth, env.prometheus_secret) == ("basic", "prometheus-basic:current")
    assert "prometheus-basic:current" in repr(env), "a secret's name, not its value, so repr may show it"


def test_metric_source_is_per_environment(tmp_path: Path) -> None:
    (tmp_path / "ethixctl.toml").write_text(CONFIG + 'metric_source = "cloudrun"\n')
    assert resolve_environment().metric_source == "cloudrun"
    (tmp_path / "ethixctl.toml").write_text(CONFIG)
    assert resolve_environment().metric_source is None, "unset: the playbook decides"


def test_the_readmes_google_cloud_example_resolves(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## Running against Google Cloud") :]
    example = section[section.index("```toml\n") + 8 : section.index("```", section.index("```toml\n") + 8)]
    (tmp_path / "ethixctl.toml").write_text(example)
    production = resolve_environment("production")
    assert production.prometheus_url.endswith("/v1/projects/ethix-prod/location/global/prometheus")
    assert (production.prometheus_auth, production.metric_source) == ("google", "cloudrun")
    staging = resolve_environment()
    assert (staging.name, staging.prometheus_auth, staging.prometheus_secret) == (
        "staging", "bearer", "prometheus-token:current",
    )  # fmt: skip
