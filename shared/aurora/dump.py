"""A YAML register dump (``aurora_fetch --yaml`` output) as a unit: read, written, never saved.

docs/protocol.md#dumps. A missing register answers like the board does: illegal data address.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from . import rtu
from .bus import BusStats
from .errors import IllegalAddress, UsageError


def load_dump(path: Path) -> dict[int, int]:
    """Read ``address: raw`` pairs; a file that is not such a map is a UsageError."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"{path}: not a readable YAML register dump ({err})") from err
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise UsageError(f"{path}: a register dump is a map of address: value")
    registers: dict[int, int] = {}
    for key, value in data.items():
        if not isinstance(key, int) or not 0 <= key <= 0xFFFF:
            raise UsageError(f"{path}: {key!r} is not a register address")
        if value is None:
            continue  # aurora_fetch --yaml writes a register that had no value as an empty scalar
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            raise UsageError(f"{path}: register {key} holds {value!r}, not a 16-bit word")
        registers[key] = value
    return registers


class DumpBus:
    """A Bus over an in-memory register map; writes change the map only."""

    def __init__(self, registers: Mapping[int, int], name: str = "dump") -> None:
        self.registers = dict(registers)
        self.name = name
        self.stats = BusStats()

    @classmethod
    def from_file(cls, path: Path) -> DumpBus:
        """Load a dump file."""
        return cls(load_dump(path), name=str(path))

    def _values(self, function: int, addresses: Sequence[int]) -> list[int]:
        self.stats.transactions += 1
        if len(addresses) > rtu.MAX_READ_REGISTERS:
            raise ValueError(f"a read holds at most {rtu.MAX_READ_REGISTERS} registers")
        try:
            return [self.registers[a] for a in addresses]
        except KeyError:
            self.stats.exception_replies += 1
            raise IllegalAddress(function, 2) from None

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """Like FC 65."""
        return self._values(65, [a for s, n in ranges for a in range(s, s + n)])

    def read_registers(self, addresses: Sequence[int]) -> list[int]:
        """Like FC 66."""
        return self._values(66, list(addresses))

    def read_holding(self, start: int, count: int) -> list[int]:
        """Like FC 3."""
        return self._values(3, list(range(start, start + count)))

    def write_register(self, address: int, value: int) -> None:
        """Like FC 6: stored in memory."""
        self.stats.transactions += 1
        self.registers[address] = value

    def close(self) -> None:
        """Nothing to release."""
