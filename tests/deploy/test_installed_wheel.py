"""ethixctl installed like a real tool: the wheel, built from a copy of this checkout, installed into a
fresh venv, run from a directory that is not a checkout, against a running local platform.

To stay fast and offline the wheel is installed with ``--no-deps`` and the new venv reaches its
dependencies through a ``.pth`` line naming this venv's site-packages. A ``.pth`` path line adds the
directory only; it does not run the editable-install hooks inside it, so ``import ethixctl`` can only
come from the wheel (asserted below).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.deploy.conftest import LocalPlatform

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ["pyproject.toml", "README.md", "ethixctl", "services", "playbooks"]
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


def _build_wheel(work: Path) -> Path:
    source = work / "src"
    source.mkdir()
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, symlinks=True, ignore=IGNORED)
        else:
            shutil.copy2(path, source / name)
    # No build isolation: setuptools comes from this venv instead of being downloaded.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
         str(work / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [wheel] = (work / "dist").glob("ethixctl-*.whl")
    return wheel


def _install(wheel: Path, work: Path) -> Path:
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "zz_current_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return env_dir / "bin"


def test_wheel_ships_the_default_playbooks(tmp_path: Path) -> None:
    names = set(zipfile.ZipFile(_build_wheel(tmp_path)).namelist())
    shipped_files = ("release.yaml", "release.md", "smoke.yaml", "smoke.md", "dr.yaml", "dr.md",
                     "fixtures/smoke_loans.csv")  # fmt: skip
    for shipped in shipped_files:
        assert f"ethixctl/playbooks/{shipped}" in names


def test_installed_wheel_runs_release_dry_run_and_smoke(
    local_platform: LocalPlatform, tmp_path: Path
) -> None:
    bin_dir = _install(_build_wheel(tmp_path), tmp_path)
    elsewhere = tmp_path / "elsewhere"  # no checkout, no ethixctl.toml: only what the wheel installed
    elsewhere.mkdir()

    def ethixctl(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "ethixctl"), *argv, "--state-dir", str(local_platform.state_dir)],
            cwd=elsewhere, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "CI": "true"},
        )  # fmt: skip

    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import ethixctl; print(ethixctl.PLAYBOOKS.resolve())"],
        cwd=elsewhere, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    assert where.startswith(str(tmp_path / "venv")), f"ethixctl was imported from {where}, not the wheel"

    from ethixctl.adapters.cloudrun import CloudRun

    image = (
        CloudRun("local", "local", endpoint=local_platform.info["control_plane_url"])
        .get_service("backend")
        .image
    )
    # No users send traffic locally: --load tells the plan a step will get enough requests to judge.
    dry = ethixctl("release", "backend", "--image", image, "--dry-run", "--load", "20", "--json")
    assert dry.returncode == 0, dry.stderr
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True
    assert [s["weight"] for s in plan["plan"]["steps"]] == [10, 50, 100]
    assert {g["name"] for g in plan["gates_now"]["gates"]} == {"error_rate", "p95_latency"}

    # The DR commands read their playbook from the package too (the local platform's control plane
    # loads it at start: a checkout-relative path broke `ethixctl up` from a wheel).
    listed = ethixctl("backup", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)

    assert plan["gates_now"]["metric_source"] == "app"
    assert "http_requests_total" in plan["gates_now"]["gates"][0]["query"]

    # The environment's metric_source (ethixctl.toml) switches every gate to Cloud Run's metric names.
    (elsewhere / "ethixctl.toml").write_text('[environments.local]\nmetric_source = "cloudrun"\n')
    dry = ethixctl("release", "backend", "--image", image, "--dry-run", "--load", "20", "--json")
    assert dry.returncode == 0, dry.stderr
    gates_now = json.loads(dry.stdout)["gates_now"]
    assert gates_now["metric_source"] == "cloudrun"
    assert all("run_googleapis_com:" in gate["query"] for gate in gates_now["gates"])
    (elsewhere / "ethixctl.toml").unlink()

    smoke = ethixctl("smoke", "--junit", str(elsewhere / "smoke.xml"))
    assert smoke.returncode == 0, smoke.stderr
    assert 'failures="0"' in (elsewhere / "smoke.xml").read_text()
    from ethixctl.ops.ledger import Ledger

    with Ledger(local_platform.state_dir) as ledger:  # preflight's "last smoke run green" reads this
        [run] = ledger.operations("local", kind="smoke", subject="backend")
    assert run.status == "passed" and run.details["target"].startswith("http://127.0.0.1:")
