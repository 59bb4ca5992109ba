"""A fresh ``git clone`` of the repository, anywhere, holds everything its tests need.

The clone lives in a temporary directory with nothing around it (no ``shared/`` beside it, no other
checkout); its unit tests run there with this checkout's interpreter, but for a few that only
compute (``COMPUTE_ONLY``: fuzzing and memory traces, a third of the unit tests' time) and read no
file a clone could lack. ``tests/conftest.py`` also
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
COMPUTE_ONLY = (
    "tests/unit/test_rpc.py::test_any_request_shaped_object_parses_or_is_a_bad_request",
    "tests/unit/test_readplan.py::test_an_all_read_holds_spans_not_an_entry_per_register",
    "tests/unit/test_vport.py::test_fuzz_both_ports",
    "tests/unit/test_rpc_query_plan.py::test_two_clients_all_queries_share_chunks_and_both_get_every_word",
    "tests/unit/test_rpc_query_plan.py::test_a_write_waits_for_one_fallback_job_not_for_the_whole_query",
)


def test_a_fresh_clone_passes_its_unit_tests(tmp_path: Path) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    for test in COMPUTE_ONLY:  # pytest ignores a --deselect that names nothing: each still names a test
        path, name = test.split("::")
        assert f"def {name}(" in (REPO / path).read_text(encoding="utf-8"), test
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
            "not timing",  # timing tests: the timing pass
            *(f"--deselect={test}" for test in COMPUTE_ONLY),
            "tests/unit",
        ],
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
