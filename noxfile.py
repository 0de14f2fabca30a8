"""nox sessions. They run in the project's ``.venv`` (``python3 tasks.py SESSION`` creates it), so a
session starts in seconds instead of rebuilding a 750 MB environment each time."""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "none"
nox.options.sessions = ["lint", "typecheck", "tests"]

SOURCES = ["ethixctl", "services", "tests", "bench", "noxfile.py", "tasks.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite, end-to-end tests included (they start real uvicorn, Caddy and Prometheus), one
    pytest-xdist worker per core: most of an end-to-end test's time is spent waiting on processes. A
    file's tests stay on one worker (``loadfile``), so a module's platform is started once."""
    session.run("pytest", *(session.posargs or ["-n", "auto", "--dist", "loadfile", "--junitxml=junit.xml"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    session.run("mypy", "ethixctl", "services")


@nox.session
def bench(session: nox.Session) -> None:
    """All benchmarks; prints a JSON summary and writes bench/results/latest.json."""
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """The main demo: start the local platform, release a good canary, then a bad one that rolls back."""
    session.run("python", "-m", "ethixctl.demo", *session.posargs)


@nox.session
def smoke(session: nox.Session) -> None:
    """Post-deploy check as CI runs it: bring the local platform up, run `ethixctl smoke` against the
    deployed backend, publish the JUnit file (reports/smoke-junit.xml), bring the platform down."""
    import tempfile

    state_dir = tempfile.mkdtemp(prefix="ethixctl-ci-")
    scope = ["--state-dir", state_dir]
    session.run("ethixctl", "up", "--free-ports", *scope)
    try:
        session.run("ethixctl", "smoke", "--env", "local", "--junit", "reports/smoke-junit.xml", *scope)
    finally:
        session.run("ethixctl", "down", "--purge", *scope)
