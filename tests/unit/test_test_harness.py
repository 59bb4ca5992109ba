"""The test suite's own rules: an unexpected ERROR log fails the test that logged it, and a run
writes no bytecode into the checkout (tests/conftest.py, tests/support/logguard.py)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from pathlib import Path

import structlog
from aurora.logs import configure_logging

from tests.support.logguard import ErrorLogGuard

REPO = Path(__file__).resolve().parents[2]

CASES = """
import logging, threading
import pytest
import structlog

def test_stdlib_error():
    logging.getLogger("paho").error("socket error")

def test_structlog_error():
    structlog.get_logger("aurora.bridge").error("poll_failed", error="timeout")

def test_structlog_exception():
    try:
        raise ValueError("bug")
    except ValueError:
        structlog.get_logger("aurora").exception("values_failed")

def test_error_in_a_thread():
    t = threading.Thread(target=lambda: logging.getLogger("worker").critical("died"), name="bus-worker")
    t.start()
    t.join()

def test_a_warning_is_fine():
    logging.getLogger("paho").warning("reconnecting")
    structlog.get_logger("aurora").warning("bus_reopen_failed")

@pytest.mark.error_log_expected("this one expects it")
def test_marked():
    structlog.get_logger("aurora").error("set_failed")

def test_checked_through_the_fixture(error_logs):
    logging.getLogger("x").error("expected")
    assert ["expected"] == [r.event for r in error_logs.records]
"""


def test_a_test_that_logs_an_error_fails_unless_it_expects_one(tmp_path: Path) -> None:
    (tmp_path / "test_cases.py").write_text(CASES)
    report = tmp_path / "report.xml"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"),
            *("-q", "--rootdir", str(tmp_path), "--junitxml", str(report), str(tmp_path / "test_cases.py")),
        ],
        cwd=REPO,  # where `tests` is importable from
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    cases = {case.get("name"): case for case in ET.parse(report).getroot().iter("testcase")}
    failed = {n for n, case in cases.items() if any(case.find(k) is not None for k in ("error", "failure"))}
    unexpected = {"test_stdlib_error", "test_structlog_error", "test_structlog_exception"}
    assert {*unexpected, "test_error_in_a_thread"} == failed, done.stdout
    assert 7 == len(cases), done.stdout
    assert "socket error" in done.stdout and "poll_failed {'error': 'timeout'}" in done.stdout
    assert "in thread 'bus-worker'" in done.stdout


def test_structlog_through_the_standard_library_is_counted_once(error_logs: ErrorLogGuard) -> None:
    """With the services' configuration (structlog rendered by a stdlib handler) an event reaches
    both sides: it is one record, and the other levels are none."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        configure_logging(fmt="json", stream=io.StringIO())
        structlog.get_logger("aurora.bridge").error("poll_failed", error="timeout")
        structlog.get_logger("aurora.bridge").info("bus_up")
        logging.getLogger("paho").warning("reconnecting")
        logging.getLogger("paho").error("lost")
        thread = threading.Thread(target=lambda: structlog.get_logger("w").critical("died"), name="w")
        thread.start()
        thread.join()
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = handlers, level
    assert [("structlog", "poll_failed"), ("logging", "lost"), ("structlog", "died")] == [
        (r.source, r.event) for r in error_logs.records
    ]
    assert ["ERROR", "ERROR", "CRITICAL"] == [r.level for r in error_logs.records]


def test_a_process_a_test_starts_writes_its_bytecode_outside_the_checkout() -> None:
    """The environment every started process inherits sends bytecode to a cache outside the tree,
    and Python there caches the project's modules (so tools still start from bytecode)."""
    prefix = Path(os.environ["PYTHONPYCACHEPREFIX"])
    assert not prefix.resolve().is_relative_to(REPO)
    module = REPO / "shared" / "aurora" / "rtu.py"
    in_tree = module.parent / "__pycache__" / f"rtu.{sys.implementation.cache_tag}.pyc"
    before = in_tree.stat().st_mtime_ns if in_tree.exists() else None
    # as a user's shell starts it: bytecode written (this machine may say otherwise)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util, sys, aurora.rtu as m; print(sys.pycache_prefix); "
            "print(importlib.util.cache_from_source(m.__file__)); print(m.__file__)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    # the module imported may be another checkout's (a clone's tests run with the venv's package)
    printed_prefix, cached, imported = done.stdout.split()
    assert Path(printed_prefix) == prefix
    assert Path(cached).is_relative_to(prefix) and not Path(cached).resolve().is_relative_to(REPO)
    assert Path(cached).exists(), "the import wrote its bytecode to the cache"
    assert Path(cached).stat().st_mtime >= Path(imported).stat().st_mtime
    assert before == (in_tree.stat().st_mtime_ns if in_tree.exists() else None), "written into the tree"
    assert sys.pycache_prefix == str(prefix)  # this process too


def test_the_modules_started_first_exist() -> None:
    """tests/conftest.py's LONG_MODULES: a renamed module would silently lose its early start."""
    from tests.conftest import LONG_MODULES

    assert [] == [m for m in LONG_MODULES if not (REPO / "tests" / m).is_file()]


def test_a_timing_run_skips_only_modules_without_timing_tests() -> None:
    """tests/conftest.py's pytest_ignore_collect: a timing pass still collects every timing test."""

    def collected(markexpr: str) -> set[str]:
        argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--co", "-m", markexpr]
        # modules with timing tests and without, in both test directories
        modules = ["tests/unit/test_vport.py", "tests/unit/test_rtu.py", "tests/integration/test_energy.py"]
        modules += ["tests/integration/test_acl.py"]
        done = subprocess.run([*argv, *modules], cwd=REPO, capture_output=True, text=True, check=False)
        assert 0 == done.returncode, done.stdout[-2000:] + done.stderr[-2000:]
        return {line for line in done.stdout.splitlines() if "::" in line}

    skipping = collected("timing")  # modules that mark no timing test are not imported
    importing = collected("(timing)")  # the same selection, with every module imported
    assert skipping and skipping == importing


def _junit(cases: Path, report: Path) -> None:
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--junitxml", str(report)]
    subprocess.run([*argv, str(cases)], cwd=cases.parent, capture_output=True, timeout=120, check=False)


def test_a_failed_run_ends_with_the_names_of_its_failed_tests(tmp_path: Path) -> None:
    """make test's passes print one after another, and a CI log kept only by its end lost the
    name of a failed test of the first pass: scripts/failed_tests.py prints them at the end."""
    cases, report = tmp_path / "test_few.py", tmp_path / "report.xml"
    cases.write_text(
        "import pytest\n\n"
        "@pytest.fixture\ndef broken():\n    raise RuntimeError('no broker')\n\n"
        "def test_fine():\n    pass\n\n"
        "def test_wrong():\n    assert 1 == 2, 'one is not two'\n\n"
        "def test_set_up(broken):\n    pass\n"
    )
    _junit(cases, report)
    script = [sys.executable, str(REPO / "scripts" / "failed_tests.py")]
    done = subprocess.run(
        [*script, str(report), str(tmp_path / "absent.xml")], capture_output=True, text=True, check=False
    )
    assert 1 == done.returncode
    names = sorted(line for line in done.stdout.splitlines() if not line.startswith(" "))
    assert ["ERROR test_few::test_set_up", "FAILURE test_few::test_wrong"] == names
    assert "one is not two" in done.stdout and "no broker" in done.stdout
    assert "test_fine" not in done.stdout

    cases.write_text("def test_fine():\n    pass\n")
    _junit(cases, report)
    clean = subprocess.run([*script, str(report)], capture_output=True, text=True, check=False)
    assert (0, "") == (clean.returncode, clean.stdout)
