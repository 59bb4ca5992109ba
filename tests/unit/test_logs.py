"""Service logging: JSON lines off a terminal, and always to the stderr of the moment."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
import structlog
from aurora.logs import Repeats, configure_logging


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


class Recorded:
    """A logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append(("warning", event, fields))

    def info(self, event: str, **fields: object) -> None:
        self.lines.append(("info", event, fields))


def test_repeated_failures_are_logged_once_then_summarised_then_recovered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr("aurora.logs.time.monotonic", lambda: clock[0])
    out = Recorded()
    repeats = Repeats("bus_reopen_failed", every_s=60.0, logger=out)
    assert not repeats.recovered("bus_up")  # nothing was failing: nothing logged
    for _ in range(700):  # the old storm: 700 attempts a second, here over 70 s
        repeats.failed("Connection refused - tcp://pi:2000/", port="tcp://pi:2000/")
        clock[0] += 0.1
    assert [("warning", "bus_reopen_failed")] == [(lv, ev) for lv, ev, _ in out.lines[:1]]
    assert "Connection refused - tcp://pi:2000/" == out.lines[0][2]["error"]
    summaries = [f for _, ev, f in out.lines if ev == "bus_reopen_failed_still_failing"]
    assert 1 == len(summaries) and 599 <= int(str(summaries[0]["attempts"])) <= 601
    assert 60 == summaries[0]["in_last_s"]
    repeats.failed("tcp://pi:2000/: connection closed by the server")  # a new reason: told once
    repeats.failed("tcp://pi:2000/: connection closed by the server")
    assert 1 == sum(1 for _, _, f in out.lines if f.get("changed"))
    assert repeats.recovered("bus_up")
    assert ("info", "bus_up") == out.lines[-1][:2] and 702 == out.lines[-1][2]["failed_attempts"]
    assert len(out.lines) == 4


@pytest.mark.parametrize("fmt", ["json", "console"])
@pytest.mark.error_log_expected("the test logs an exception on purpose")
def test_a_logged_traceback_carries_no_local_variables(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """A frame's locals may hold a password or a payload: tracebacks in the log never show them."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    configure_logging(fmt=fmt)  # type: ignore[arg-type]

    def connect(password: str) -> None:
        secret_copy = password
        raise RuntimeError(f"refused ({len(secret_copy)} characters)")

    secret = "-".join(["s3cret", "Pa55word"])  # not in the source, which a traceback may quote
    try:
        connect(secret)
    except RuntimeError:
        structlog.get_logger("test").exception("connect_failed")
    text = out.getvalue()
    assert "connect_failed" in text and "RuntimeError" in text
    assert secret not in text


def test_a_tool_that_logs_late_imports_no_logging_yet_still_formats_a_librarys_record() -> None:
    """configure_logging_on_first_use leaves ``logging`` unimported (a tcp:// fetch never needs
    it, issue 15); a library that imports it later and logs (paho) still goes through the format."""
    script = (
        "import sys\n"
        "from aurora.logs import configure_logging_on_first_use\n"
        "configure_logging_on_first_use(fmt='json')\n"
        "print('logging' in sys.modules)\n"
        "import logging\n"
        "logging.getLogger('paho').warning('connection %s', 'lost')\n"
        "logging.getLogger('paho').debug('not shown')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False"
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert [(x["event"], x["level"], x["logger"]) for x in lines] == [("connection lost", "warning", "paho")]


def test_threads_that_log_before_a_deferred_configuration_all_wait_for_it() -> None:
    """The bridge detects on one thread while its main thread configures logging (issue 15):
    whichever logs first configures, the others wait, and every line comes out as configured."""
    probe = """
import json, sys, threading
from aurora.logs import configure_logging_on_first_use, configure_pending, get_logger
configure_logging_on_first_use(fmt="json")
go = threading.Barrier(9)
def run(n):
    go.wait()
    get_logger("t").info("line", n=n)
threads = [threading.Thread(target=run, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
go.wait()
configure_pending()
for t in threads:
    t.join()
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "" == done.stdout, "a line went out before the configuration"
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert list(range(8)) == sorted(line["n"] for line in lines)
