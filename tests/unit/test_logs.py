"""Service logging: JSON lines off a terminal, and always to the stderr of the moment."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import structlog
from aurora.logs import configure_logging


def test_a_late_log_line_goes_to_the_current_stderr_not_a_closed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A paho or worker thread logging after stderr was swapped (pytest, daemons) must not fail."""
    configure_logging(fmt="json")
    old = io.StringIO()
    monkeypatch.setattr(sys, "stderr", old)
    old.close()
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    structlog.get_logger("test").info("late_event", n=1)
    logging.getLogger("paho").warning("from paho")
    lines = [json.loads(line) for line in now.getvalue().splitlines()]
    assert ["late_event", "from paho"] == [line["event"] for line in lines]
