"""The one seam to the line (docs/architecture.md#bus-seam): what every reader of the heat pump needs from a
bus."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .records import Record


class BusStats(Record):
    """Counters a bus keeps for the health document; mutated only by the thread that runs the
    bus's transactions (in the bridge, the bus worker), read by any."""

    _fields = (
        "transactions",
        "timeouts",
        "frame_errors",
        "exception_replies",
        "retries",
        "reconnects",
        "bytes_sent",
        "bytes_received",
        "last_latency_s",
        "latency_ewma_s",
        "wire_time_s",
        "bus_time_s",
        "extra",
    )
    __slots__ = _fields

    def __init__(self) -> None:
        self.transactions = 0
        self.timeouts = 0
        self.frame_errors = 0
        self.exception_replies = 0
        self.retries = 0
        self.reconnects = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.last_latency_s = 0.0
        self.latency_ewma_s = 0.0
        self.wire_time_s = 0.0  # sum of the pure line time of every successful exchange
        self.bus_time_s = 0.0  # sum of the wall time of every transaction, failed ones included
        self.extra: dict[str, int] = {}

    def record_latency(self, seconds: float) -> None:
        """Fold one successful transaction's wall time into the averages."""
        self.last_latency_s = seconds
        self.latency_ewma_s = (
            seconds if not self.latency_ewma_s else 0.9 * self.latency_ewma_s + 0.1 * seconds
        )

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready copy."""
        out: dict[str, float | int] = {name: getattr(self, name) for name in self._fields if name != "extra"}
        out.update(self.extra)
        return out


@runtime_checkable
class Bus(Protocol):
    """Reads and writes holding registers of the ABC (slave 1).

    Reads return raw 16-bit words in request order (duplicates kept) and hold at most 100
    registers; callers chunk with ``aurora.query``. Errors are ``aurora.errors`` types only.
    """

    stats: BusStats

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """(start, count) ranges in one transaction where the board allows it (FC 65)."""
        ...

    def read_registers(self, addresses: Sequence[int]) -> list[int]:
        """Single addresses in one transaction where the board allows it (FC 66)."""
        ...

    def read_holding(self, start: int, count: int) -> list[int]:
        """One block with the standard FC 3."""
        ...

    def write_register(self, address: int, value: int) -> None:
        """FC 6, confirmed: on a lost reply the register is read back, never blindly rewritten."""
        ...

    def close(self) -> None:
        """Release the line."""
        ...
