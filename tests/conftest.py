"""Fixtures every test directory may use, and the logs of started processes in failure reports."""

from __future__ import annotations

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
