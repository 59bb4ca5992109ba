"""Interop with an independent ModBus implementation (pymodbus, used only in tests).

pymodbus reads our simulator with FC 3 over RTU-over-TCP; our client reads and writes FC 3/6/16
against pymodbus's server. Both directions agree on framing, CRC and addressing.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aurora.transport import open_serial
from pymodbus import FramerType
from pymodbus.client import ModbusTcpClient
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.server import ModbusTcpServer

from tests.support import free_port, wait_for_port
from tests.support.sim import Sim

pytestmark = pytest.mark.integration


@pytest.fixture
def sim_tcp(tmp_path: Path) -> Iterator[int]:
    """`aurora_sim --tcp 127.0.0.1:0` as the README starts it; yields the port it printed."""
    dump = tmp_path / "unit.yml"
    dump.write_text("---\n745: 680\n746: 730\n747: 712\n", encoding="utf-8")
    with Sim.start(tmp_path, str(dump), "--tcp", "127.0.0.1:0", "--baud", "0") as sim:
        match = re.search(r"tcp://127.0.0.1:(\d+)/", sim.url)
        assert match, sim.url
        yield int(match.group(1))


def test_pymodbus_reads_our_simulator_with_function_3(sim_tcp: int) -> None:
    """An independent RTU master gets the dump's words from aurora_sim."""
    client = ModbusTcpClient("127.0.0.1", port=sim_tcp, framer=FramerType.RTU, timeout=3)
    assert client.connect()
    try:
        reply = client.read_holding_registers(745, count=3, device_id=1)
        assert not reply.isError(), reply
        assert reply.registers == [680, 730, 712]
    finally:
        client.close()


@pytest.fixture
def pymodbus_server() -> Iterator[int]:
    """pymodbus's RTU-over-TCP slave in a thread, holding registers 0..999 = 0."""
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    block = ModbusSequentialDataBlock(1, [0] * 1000)  # pymodbus counts data blocks from 1
    context = ModbusServerContext(devices={1: ModbusDeviceContext(hr=block)})
    port = free_port()
    loop = asyncio.new_event_loop()
    started: dict[str, ModbusTcpServer] = {}

    async def serve() -> None:
        started["server"] = ModbusTcpServer(context, framer=FramerType.RTU, address=("127.0.0.1", port))
        await started["server"].serve_forever()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    wait_for_port("127.0.0.1", port, 5.0)
    yield port
    asyncio.run_coroutine_threadsafe(started["server"].shutdown(), loop).result(5)
    thread.join(5)


def test_our_client_reads_and_writes_functions_3_6_16_against_pymodbus(
    pymodbus_server: int,
) -> None:
    """FC 6 and FC 16 writes land; FC 3 reads them back, and so does pymodbus's own client."""
    port = pymodbus_server
    bus = open_serial(f"tcp://127.0.0.1:{port}/", latency_s=1.0)
    try:
        bus.write_register(745, 680)
        bus.write_block(100, [1, 2, 3])
        assert bus.read_holding(745, 1) == [680]
        assert bus.read_holding(100, 3) == [1, 2, 3]
        assert bus.stats.retries == 0
    finally:
        bus.close()
    # pymodbus's own client sees what we wrote: the writes landed in its server, not just in our view.
    client = ModbusTcpClient("127.0.0.1", port=port, framer=FramerType.RTU, timeout=3)
    assert client.connect()
    try:
        assert client.read_holding_registers(745, count=1, device_id=1).registers == [680]
        assert client.read_holding_registers(100, count=3, device_id=1).registers == [1, 2, 3]
    finally:
        client.close()
