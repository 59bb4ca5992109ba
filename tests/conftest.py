"""Fixtures every test directory may use, and the logs of started processes in failure reports."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support import Broker
from tests.support.processes import logs_for_report, start_of_test


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto with the project's TLS listener, password file and ACL, on a free port."""
    with Broker.start(tmp_path) as running_broker:
        yield running_broker


REPO = Path(__file__).resolve().parents[1]
_AUDITED = ("open", "os.listdir", "os.scandir")


def reads_outside_checkout(path: object, repo: Path = REPO) -> bool:
    """Whether a test opening ``path`` reads a neighbour of the checkout (``../shared``, another
    checkout): a clone elsewhere would not have it. System, interpreter, home and temporary
    directories are fine; when the checkout sits right in one of those, nothing is checked."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        return False  # a file descriptor
    parent = repo.parent
    allowed = [Path(p) for p in (sys.prefix, sys.base_prefix, tempfile.gettempdir(), Path.home())]
    if parent == Path(parent.anchor) or any(
        a.is_relative_to(parent) and not a.is_relative_to(repo) for a in allowed
    ):
        return False
    target = Path(os.path.abspath(os.fsdecode(path)))
    return target.is_relative_to(parent) and not target.is_relative_to(repo)


def _refuse_reads_outside_checkout(event: str, args: tuple[object, ...]) -> None:
    if event in _AUDITED and args and reads_outside_checkout(args[0]):
        raise PermissionError(f"tests read only inside the checkout, not {os.fsdecode(args[0])!r}")  # type: ignore[arg-type]


def pytest_configure(config: pytest.Config) -> None:
    sys.addaudithook(_refuse_reads_outside_checkout)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    start_of_test()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for title, text in logs_for_report():
            report.sections.append((title, text))
