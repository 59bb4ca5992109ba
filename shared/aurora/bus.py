"""The one seam to the line (docs/architecture.md#bus-seam): what every reader of the heat pump needs from a
bus."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Protocol, runtime_checkable


@dataclass(slots=True)
class BusStats:
    """Counters a bus keeps for the health document; mutated only by the thread that runs the
    bus's transactions (in the bridge, the bus worker), read by any."""

    transactions: int = 0
    timeouts: int = 0
    frame_errors: int = 0
    exception_replies: int = 0
    retries: int = 0
    reconnects: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    last_latency_s: float = 0.0
    latency_ewma_s: float = 0.0
    wire_time_s: float = 0.0  # sum of the pure line time of every successful exchange
    bus_time_s: float = 0.0  # sum of the wall time of every transaction, failed ones included
    extra: dict[str, int] = field(default_factory=dict)

    def record_latency(self, seconds: float) -> None:
        """Fold one successful transaction's wall time into the averages."""
        self.last_latency_s = seconds
        self.latency_ewma_s = (
            seconds if not self.latency_ewma_s else 0.9 * self.latency_ewma_s + 0.1 * seconds
        )

    def as_dict(self) -> dict[str, float | int]:
        """A JSON-ready copy."""
        out: dict[str, float | int] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"
        }
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
