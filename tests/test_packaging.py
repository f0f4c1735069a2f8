"""The distribution: one wheel ships both packages and the templates, and works installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (built,) = out.glob("newsletter-*.whl")
    return built


def test_wheel_holds_both_packages_and_the_templates(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "newsletter/__init__.py" in names
    assert "subscribers/__init__.py" in names
    templates = {n for n in names if n.startswith("newsletter/_templates/email/")}
    assert any(n.endswith(".html") for n in templates), sorted(names)
    assert any(n.endswith(".txt") for n in templates)
    assert not any(n.startswith("tests/") for n in names)


def test_non_editable_install_runs_from_its_own_files(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    probe = (
        "import newsletter, subscribers, newsletter.content.templates as t;"
        "print(newsletter.__file__); print(subscribers.__file__); print(t.templates_dir())"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.startswith(str(site)) for line in lines), lines
    assert (Path(lines[2]) / "email").is_dir()
    help_run = subprocess.run(
        [sys.executable, "-m", "newsletter", "--help"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert help_run.returncode == 0, help_run.stderr
    assert "edition" in help_run.stdout
