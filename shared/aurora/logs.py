"""Logging set-up for services (docs/architecture.md#logging): readable on a terminal, JSON lines otherwise.

Libraries call ``get_logger(__name__)`` (or ``structlog.get_logger``); a service calls
``configure_logging`` once, or a short-lived tool ``configure_logging_on_first_use``.
Standard-library loggers (paho, tenacity) go through the same formatter.

Nothing here imports structlog or logging before something logs: ``aurora_fetch`` on a
``tcp://`` port must start as fast as the interpreter does (issue 15), and structlog with what it
pulls in (asyncio among them) takes longer to import than the rest of the tool.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    import argparse
    import logging

Format = Literal["auto", "console", "json"]
FORMATS: tuple[Format, ...] = ("auto", "console", "json")


def add_log_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--log-format``, the same in every tool (its variable: ``AURORA_LOG_FORMAT``)."""
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default="auto",
        help="log lines as console text or JSON; auto: JSON lines unless stderr is a terminal",
    )


_pending: dict[str, Any] | None = None  # configure_logging's arguments, until the first log
# A service may log from several threads before it is configured (the bridge's detection runs
# while its main thread imports the rest): one configures, the others wait for it.
_configure_lock = threading.RLock()
_configuring = False


def _current_stderr_handler() -> logging.Handler:
    import logging

    class _CurrentStderr(logging.StreamHandler):  # type: ignore[type-arg]
        """Writes to whatever ``sys.stderr`` is at the time: a thread logging late must not hit a
        stream that was swapped and closed meanwhile (as under pytest's capture)."""

        def __init__(self) -> None:
            super().__init__(sys.stderr)

        @property
        def stream(self) -> TextIO:
            return sys.stderr

        @stream.setter
        def stream(self, value: TextIO) -> None:
            pass  # always the current sys.stderr

    return _CurrentStderr()


class _LazyLogger:
    """structlog's logger for a name, imported and configured when first used."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        # A configuration asked for since this logger was made (a tool's main() run again in one
        # process) applies before this line too, not only before a logger's first line
        if _pending is not None or _configuring:
            _configure_pending()
        if self._logger is None:
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attr)


def get_logger(name: str) -> Any:
    """A structlog logger for ``name`` that imports structlog only when it first logs."""
    return _LazyLogger(name)


def configure_logging_on_first_use(**options: Any) -> None:
    """``configure_logging(**options)`` when something first logs, through ``get_logger`` or the
    standard library (paho, pyserial), so a run that logs nothing never imports structlog. For
    tools that log only when something goes wrong.

    The standard library's records are caught from the moment something imports ``logging``
    (paho does, a ``tcp://`` port does not): this does not import it itself (issue 15)."""
    global _pending
    _pending = options
    if "logging" in sys.modules:
        _catch_first_record()
    elif not any(isinstance(finder, _WhenLoggingImported) for finder in sys.meta_path):
        sys.meta_path.insert(0, _WhenLoggingImported())


class _WhenLoggingImported:
    """A finder that finds nothing itself: on the first import of ``logging`` it lets the usual
    finder load it, then puts the first-record catch on the root logger (while configuring is
    still pending), and leaves ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        load = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            load(module)
            if _pending is not None:
                _catch_first_record()

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this loader only
        return spec


def _catch_first_record() -> None:
    """Configure from ``_pending`` when the root logger gets its first record."""
    import logging

    class _FirstRecord(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            root = logging.getLogger()
            root.removeHandler(self)
            _configure_pending()
            if record.levelno >= root.getEffectiveLevel():
                root.handle(record)  # now through the real handler

    root = logging.getLogger()
    root.handlers[:] = [_FirstRecord()]
    root.setLevel(logging.DEBUG if (_pending or {}).get("debug") else logging.INFO)


def _configure_pending() -> None:
    global _pending, _configuring
    with _configure_lock:
        options, _pending = _pending, None
        if options is not None:
            _configuring = True
            try:
                configure_logging(**options)
            finally:
                _configuring = False


def configure_pending() -> None:
    """Do now what ``configure_logging_on_first_use`` deferred (nothing if nothing is pending): a
    service defers it to start work on another thread first, then configures while that waits."""
    _configure_pending()


def configure_logging(
    *, debug: bool = False, fmt: Format | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) as console text or JSON.

    ``fmt`` defaults to ``AURORA_LOG_FORMAT`` or ``auto`` (JSON when the stream is not a terminal).
    """
    import logging

    import structlog

    global _pending
    _pending = None
    explicit = stream is not None
    stream = stream or sys.stderr
    # empty is unset, as for every variable (docs/configuration.md)
    fmt = fmt or (os.environ.get("AURORA_LOG_FORMAT") or "").strip() or "auto"  # type: ignore[assignment]
    as_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if as_json:
        renderer = structlog.processors.JSONRenderer()
        # Tracebacks without the frames' local variables: a local may hold a password or a
        # request's payload, and logs must never carry secrets (structlog shows locals by default)
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        shared.append(structlog.processors.ExceptionRenderer(transformer))
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream) if explicit else _current_stderr_handler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    handler.addFilter(_hide_bridge_ids)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)


def hide_bridge_ids(text: str) -> str:
    """``text`` with the secret part of any bridge client id left out: ``bridge-<serial>-…``.

    The bridge's client id comes from its password (``aurora.mqtt.bridge_client_id``); who knows
    it can knock the bridge off the broker, so logs never show it whole (paho names it at DEBUG).
    """
    if "bridge-" not in text:
        return text
    import re

    return re.sub(r"\b(bridge-[^\s'\"/+#-]+-)[0-9a-f]{24}\b", r"\1…", text)


def _hide_bridge_ids(record: logging.LogRecord) -> bool:
    """Handler filter: standard-library records (paho's), whichever logger they came through."""
    if isinstance(record.msg, str) and "bridge-" in record.getMessage():
        record.msg, record.args = hide_bridge_ids(record.getMessage()), ()
    return True


class Repeats:
    """A failure that repeats is logged once, then summarised: a long outage must not fill a disk.

    The first failure of a run is logged at WARNING with everything the caller passes (what,
    where, why); later ones are counted and summarised at most every ``every_s`` seconds
    (``<event>_still_failing``: attempts in that window, the latest reason), and a changed
    reason is logged once when it first appears. ``recovered`` ends the run with one INFO line.
    Thread-safe.
    """

    def __init__(self, event: str, *, every_s: float = 60.0, logger: Any = None) -> None:
        self.event = event
        self.every_s = every_s
        if logger is None:
            logger = get_logger("aurora")  # structlog only once it logs (see the module's note)
        self._log = logger
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic time of the run's first failure
        self._window_start = 0.0
        self._window_count = 0
        self._total = 0
        self._reason: str | None = None
        self._reasons_logged: set[str] = set()

    @property
    def failing(self) -> bool:
        """Whether a run of failures is going on."""
        return self._since is not None

    @property
    def attempts(self) -> int:
        """Failures in the current run."""
        return self._total

    def failed(self, reason: str, **fields: Any) -> None:
        """Count one failure; log it if it is the first of a run, a new reason, or a summary is due."""
        now = time.monotonic()
        with self._lock:
            self._total += 1
            self._reason = reason
            if self._since is None:
                self._since = self._window_start = now
                self._window_count = 0
                self._reasons_logged = {reason}
                self._log.warning(self.event, error=reason, **fields)
                return
            self._window_count += 1
            if reason not in self._reasons_logged and len(self._reasons_logged) < 8:
                self._reasons_logged.add(reason)
                self._log.warning(self.event, error=reason, changed=True, **fields)
            elif now - self._window_start >= self.every_s:
                self._log.warning(
                    f"{self.event}_still_failing",
                    attempts=self._window_count,
                    in_last_s=round(now - self._window_start),
                    failing_for_s=round(now - self._since),
                    error=reason,
                    **fields,
                )
                self._window_start = now
                self._window_count = 0

    def recovered(self, event: str, **fields: Any) -> bool:
        """End a run of failures with one INFO ``event``; False (nothing logged) when none was going on."""
        with self._lock:
            if self._since is None:
                return False
            failing_for = time.monotonic() - self._since
            attempts, self._total, self._since = self._total, 0, None
            self._log.info(event, failed_attempts=attempts, failing_for_s=round(failing_for, 1), **fields)
            return True
