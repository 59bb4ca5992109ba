"""The web tool's only way to the heat pump's registers: one Bus, one thread, one request at a time.

Like the original's class-level mutex (docs/protocol.md#awl-cgi), but a blocking Bus call never stalls
the event loop that serves the pages. A lost line is reopened on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import structlog
from aurora import registers
from aurora.bus import Bus
from aurora.errors import BusError
from aurora.query import Query, QueryResult, plan_chunks, read_query

log = structlog.get_logger("aurora.web")

T = TypeVar("T")

SERIAL_NUMBER = range(105, 110)  # five words of ASCII (docs/architecture.md#detection)
FAULT_COUNTERS = range(601, 700)  # register 600 + n counts fault n (docs/protocol.md#faults)


class BusGate:
    """Runs Bus calls in one worker thread; ``opener`` makes a new Bus after a lost line."""

    def __init__(self, opener: Callable[[], Bus], bus: Bus | None = None) -> None:
        self._opener = opener
        self._bus = bus
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bus")

    def _call(self, job: Callable[[Bus], T]) -> T:
        if self._bus is None:
            self._bus = self._opener()
        try:
            return job(self._bus)
        except BusError:
            # The line is gone (or the broker): start afresh next time instead of failing forever.
            with contextlib.suppress(Exception):
                self._bus.close()
            self._bus = None
            raise

    async def run(self, job: Callable[[Bus], T]) -> T:
        """Run ``job(bus)`` on the bus thread and wait for its result (or its AuroraError)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._call, job)

    def close(self) -> None:
        """Close the bus after the last queued job."""

        def _close() -> None:
            if self._bus is not None:
                self._bus.close()
                self._bus = None

        with contextlib.suppress(Exception):
            self._executor.submit(_close).result(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)


def read_words(bus: Bus, addresses: Sequence[int]) -> list[int]:
    """Raw words for ``addresses`` in request order, duplicates kept, read in ≤100-register chunks.

    Any register the unit refuses fails the whole read (the AWL page expects all or nothing).
    """
    words: dict[int, int] = {}
    for chunk in plan_chunks(addresses):
        words.update(zip(chunk.addresses, chunk.read(bus), strict=True))
    return [words[a] for a in addresses]


def write_words(bus: Bus, writes: Sequence[tuple[int, int]]) -> None:
    """Check every write against the register map first, then write them in order (FC 6).

    Nothing is written when any one is refused (WriteRefused), unlike the original
    (docs/protocol.md#bugs-web).
    """
    for address, raw in writes:
        registers.validate_raw_write(address, raw)
    for address, raw in writes:
        bus.write_register(address, raw)


def read_serial(bus: Bus) -> str:
    """The unit's serial number (registers 105..109), e.g. ``2611000042``."""
    return str(registers.string(read_words(bus, list(SERIAL_NUMBER))))


def read_browser(bus: Bus, query: Query) -> QueryResult:
    """A register-browser query: keywords fall back register by register; missing ones listed."""
    return read_query(bus, query, skip_missing=True)


def read_faults(bus: Bus) -> QueryResult:
    """The current fault (25), last lockout (26) and the fault counters 601..699."""
    return read_query(bus, Query.of((25, 26, *FAULT_COUNTERS)), skip_missing=True)


__all__ = [
    "BusGate",
    "read_browser",
    "read_faults",
    "read_serial",
    "read_words",
    "write_words",
]
