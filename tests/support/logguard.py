"""Every ERROR (or worse) logged inside the pytest process, so that ``tests/conftest.py`` can fail
the test that logged it unexpectedly.

Both ways the code logs are watched: the standard library (``logging.Logger.handle``, which every
record that passes its logger's level reaches, whatever handlers ``configure_logging`` installed)
and structlog (its bound loggers' one processing step, configured or not). A test that expects
such a log says so: ``@pytest.mark.error_log_expected("why")``, or it asks for the ``error_logs``
fixture and checks the records itself. Logs of the processes a test starts are not seen here:
those tests read the process's own log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import structlog._base  # the one method every bound logger's log calls pass through

ERROR = logging.ERROR
# structlog's method names that are not also stdlib level names
_METHOD_LEVELS = {
    "exception": logging.ERROR,
    "err": logging.ERROR,
    "failure": logging.ERROR,
    "msg": logging.INFO,
}


@dataclass(frozen=True, slots=True)
class LoggedError:
    """One record at ERROR or above: where it came from and what it said."""

    source: str  # "logging" or "structlog"
    level: str
    logger: str
    event: str  # the message (structlog: the event name)
    fields: str  # structlog's key-value pairs, '' for the standard library
    thread: str

    def __str__(self) -> str:
        where = f"{self.level} from {self.source} logger {self.logger!r} in thread {self.thread!r}"
        return f"{where}: {self.event} {self.fields}".rstrip()


def _level_of(method_name: str) -> int:
    if method_name in _METHOD_LEVELS:
        return _METHOD_LEVELS[method_name]
    level = logging.getLevelName(method_name.upper())
    return level if isinstance(level, int) else logging.INFO


class ErrorLogGuard:
    """Collects the ERROR records logged while it is installed (from any thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[LoggedError] = []

    @property
    def records(self) -> list[LoggedError]:
        """The records so far, oldest first (a copy)."""
        with self._lock:
            return list(self._records)

    def _add(self, record: LoggedError) -> None:
        with self._lock:
            self._records.append(record)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Watch both logging systems until ``monkeypatch`` is undone (the test's end)."""
        guard = self
        handle: Callable[[logging.Logger, logging.LogRecord], None] = logging.Logger.handle
        process_event: Callable[..., tuple[Sequence[Any], Mapping[str, Any]]] = (
            structlog._base.BoundLoggerBase._process_event
        )

        def watched_handle(logger: logging.Logger, record: logging.LogRecord) -> None:
            # structlog routed through the standard library hands its event dict as the message:
            # that record was counted already, by the structlog side
            if record.levelno >= ERROR and not isinstance(record.msg, dict):
                guard._add(
                    LoggedError(
                        "logging",
                        record.levelname,
                        record.name,
                        record.getMessage(),
                        "",
                        record.threadName or "",
                    )
                )
            handle(logger, record)

        def watched_process_event(
            bound: Any, method_name: str, event: str | None, event_kw: dict[str, Any]
        ) -> tuple[Sequence[Any], Mapping[str, Any]]:
            level = _level_of(method_name)
            if level >= ERROR:
                fields = {k: v for k, v in event_kw.items() if k != "exc_info"}
                name = str(getattr(getattr(bound, "_logger", None), "name", ""))
                guard._add(
                    LoggedError(
                        "structlog",
                        logging.getLevelName(level),
                        name,
                        str(event),
                        str(fields) if fields else "",
                        threading.current_thread().name,
                    )
                )
            return process_event(bound, method_name, event, event_kw)

        monkeypatch.setattr(logging.Logger, "handle", watched_handle)
        monkeypatch.setattr(structlog._base.BoundLoggerBase, "_process_event", watched_process_event)


def failure_message(records: Sequence[LoggedError]) -> str:
    """What a test that logged ``records`` unexpectedly fails with."""
    lines = "\n".join(f"  {r}" for r in records[:20])
    more = f"\n  ... and {len(records) - 20} more" if len(records) > 20 else ""
    return (
        f"the test logged {len(records)} unexpected ERROR record(s):\n{lines}{more}\n"
        "(a test that expects one: @pytest.mark.error_log_expected('why'), or the error_logs fixture)"
    )
