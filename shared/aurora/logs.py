"""Logging set-up for services (STYLE §10): readable on a terminal, JSON lines otherwise.

Libraries only call ``structlog.get_logger(__name__)``; a service calls ``configure_logging`` once.
Standard-library loggers (paho, tenacity) go through the same formatter.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO

import structlog

Format = Literal["auto", "console", "json"]


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


def configure_logging(
    *, debug: bool = False, fmt: Format | None = None, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to ``stream`` (stderr) as console text or JSON.

    ``fmt`` defaults to ``AURORA_LOG_FORMAT`` or ``auto`` (JSON when the stream is not a terminal).
    """
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
    handler = logging.StreamHandler(stream) if explicit else _CurrentStderr()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
