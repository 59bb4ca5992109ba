"""A fresh ``git clone`` of the repository, anywhere, holds everything its tests need.

The clone lives in a temporary directory with nothing around it (no ``shared/`` beside it, no other
checkout); its unit tests run there with this checkout's interpreter. ``tests/conftest.py`` also
refuses, in every test run, any open outside the checkout next to it (``reads_outside_checkout``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT_S = 600.0
# pytest-timeout's default (120 s) is for one test; this one runs a whole suite, on a machine that the
# parallel pass keeps busy
pytestmark = [pytest.mark.integration, pytest.mark.timeout(UNIT_S + 60)]


def test_a_fresh_clone_passes_its_unit_tests(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    clone = tmp_path / "elsewhere" / "aurora"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120)
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-m",
            "not timing",
            "tests/unit",
        ],  # timing tests: the timing pass,
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=UNIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout
    # the clone's own tests ran, not this checkout's
    assert str(REPO / "tests") not in done.stdout
