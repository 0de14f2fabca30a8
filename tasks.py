#!/usr/bin/env python3
"""Bootstrap and run: the two commands a newcomer needs on a machine with only Python 3.11 and pip.

    python3 tasks.py demo    # set up, start the local platform, run a good and a bad canary release
    python3 tasks.py test    # set up, run the whole test suite (what CI runs)

Also: ``smoke`` (platform up, smoke suite with a JUnit report, platform down), ``lint``, ``typecheck``,
``bench``. Each one creates ``.venv`` when missing, installs the project
with every extra, installs Prometheus (Debian package) when it is missing and we are allowed to, then
hands over to the matching ``nox`` session. Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
SESSIONS = ("demo", "test", "smoke", "lint", "typecheck", "bench")
PROMETHEUS_INSTALL = "apt-get update && apt-get install -y --no-install-recommends prometheus"


def _say(message: str) -> None:
    print(f"[tasks] {message}", file=sys.stderr, flush=True)


def ensure_venv() -> None:
    stamp = VENV / ".installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        _say(f"creating {VENV}")
        venv.create(VENV, with_pip=True)
    _say("installing ethixctl with its services and dev extras (about a minute the first time)")
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[services,dev]"], check=True)
    stamp.write_text(wanted)


def ensure_prometheus() -> None:
    if shutil.which("prometheus"):
        return
    can_install = shutil.which("apt-get") is not None and (
        os.geteuid() == 0 or shutil.which("sudo") is not None
    )
    if not can_install:
        sys.exit(
            "Prometheus is not installed and cannot be installed from here.\n"
            f"Install it as an administrator:  sudo sh -c '{PROMETHEUS_INSTALL}'\n"
            "or put a prometheus binary (2.x) on PATH."
        )
    _say("installing the Debian package prometheus (about 20 s)")
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "sh", "-c", PROMETHEUS_INSTALL], check=True, env=env, stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - this file runs before the venv exists, on any python3
        sys.exit(f"Python 3.11 or newer is needed (this is {sys.version.split()[0]})")
    if not argv or argv[0] not in SESSIONS:
        print(__doc__)
        print(f"usage: python3 tasks.py {{{'|'.join(SESSIONS)}}} [args passed to the session]")
        return 2
    session, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    ensure_venv()
    if session in ("demo", "test", "smoke", "bench"):
        ensure_prometheus()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(VENV)}
    nox_session = "tests" if session == "test" else session
    command = [str(BIN / "nox"), "--no-venv", "-f", str(ROOT / "noxfile.py"), "-s", nox_session]
    if rest:
        command += ["--", *rest]
    return subprocess.call(command, env=env, cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
