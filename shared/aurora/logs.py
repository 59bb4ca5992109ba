"""Logging set-up for services (STYLE §10): readable on a terminal, JSON lines otherwise.

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
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    import logging

Format = Literal["auto", "console", "json"]

_pending: dict[str, Any] | None = None  # configure_logging's arguments, until the first log


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
        if self._logger is None:
            _configure_pending()
            import structlog

            self._logger = structlog.get_logger(self._name)
        return getattr(self._logger, attr)


def get_logger(name: str) -> Any:
    """A structlog logger for ``name`` that imports structlog only when it first logs."""
    return _LazyLogger(name)


def configure_logging_on_first_use(**options: Any) -> None:
    """``configure_logging(**options)`` when something first logs through ``get_logger``, so a run
    that logs nothing never imports structlog. For tools that log only when something goes wrong."""
    global _pending
    _pending = options


def _configure_pending() -> None:
    global _pending
    options, _pending = _pending, None
    if options is not None:
        configure_logging(**options)


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
    fmt = fmt or os.environ.get("AURORA_LOG_FORMAT", "auto")  # type: ignore[assignment]
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
        shared.append(structlog.processors.dict_tracebacks)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
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
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
