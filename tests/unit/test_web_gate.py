"""How web_aid_tool reads and writes through a Bus: chunked reads in request order, all-or-nothing writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from aurora.dump import DumpBus
from aurora.errors import BusError, IllegalAddress, WriteRefused
from aurora.web.context import Hub
from aurora.web.gate import BusGate, read_faults, read_serial, read_words, write_words


class CountingBus(DumpBus):
    """A dump that remembers the size of every read."""

    def __init__(self, registers: dict[int, int]) -> None:
        super().__init__(registers)
        self.reads: list[int] = []

    def read_ranges(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        self.reads.append(sum(n for _, n in ranges))
        return super().read_ranges(ranges)


def test_a_large_getregs_is_read_in_chunks_of_at_most_100_in_request_order() -> None:
    """docs/protocol.md#bugs-web: the original sent one request of any size; the board allows 100."""
    bus = CountingBus({a: a % 1000 for a in range(1000, 1250)})
    addresses = [*range(1000, 1250), 1100, 1000]
    assert [a % 1000 for a in addresses] == read_words(bus, addresses)
    assert all(n <= 100 for n in bus.reads) and 250 == sum(bus.reads)


def test_a_missing_register_fails_the_whole_read() -> None:
    """The AWL page expects every value or an error, never a shifted list."""
    with pytest.raises(IllegalAddress):
        read_words(DumpBus({745: 680}), [745, 746])


def test_writes_are_checked_before_any_is_made() -> None:
    """One refused pair leaves every register as it was."""
    bus = DumpBus({340: 3, 341: 5, 745: 680})
    with pytest.raises(WriteRefused):
        write_words(bus, [(340, 4), (745, 700)])
    assert {340: 3, 341: 5, 745: 680} == bus.registers
    write_words(bus, [(340, 4), (341, 6)])
    assert (4, 6) == (bus.registers[340], bus.registers[341])


def test_serial_number_and_fault_counters_are_read_from_their_registers() -> None:
    """105..109 is ASCII; counters the unit does not keep are simply absent."""
    words = {105: 0x3236, 106: 0x3131, 107: 0x3030, 108: 0x3030, 109: 0x3432, 25: 0, 26: 0, 605: 2}
    bus = DumpBus(words)
    assert "2611000042" == read_serial(bus)
    result = read_faults(bus)
    assert {25: 0, 26: 0, 605: 2} == result.values


def test_the_gate_reopens_a_lost_line_on_the_next_request() -> None:
    """A BusError drops the bus; the next job opens a new one instead of failing forever."""
    opened: list[DumpBus] = []

    def opener() -> DumpBus:
        opened.append(DumpBus({745: 680 + len(opened)}))
        return opened[-1]

    def lose_line(bus: object) -> int:
        raise BusError("gone")

    async def scenario() -> tuple[int, int]:
        gate = BusGate(opener)
        first = await gate.run(lambda bus: read_words(bus, [745])[0])
        with pytest.raises(BusError):
            await gate.run(lose_line)
        second = await gate.run(lambda bus: read_words(bus, [745])[0])
        gate.close()
        return first, second

    assert (680, 681) == asyncio.run(scenario())


def test_a_stream_that_falls_behind_gets_a_fresh_snapshot_instead_of_blocking() -> None:
    """One stalled phone must not hold up the others or grow memory without bound."""

    async def scenario() -> list[object]:
        hub = Hub()
        queue = hub.subscribe()
        for i in range(queue.maxsize + 5):
            hub.publish(("value", {"i": i}))
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    items = asyncio.run(scenario())
    assert ("meta", None) in items and len(items) < 20
