"""Virtual ports: real ModBus clients share the bridge's line with its polling.

One broker, one paced sim (no drift, writes logged) and one bridge serving both virtual ports
(``--vport-rtu``, ``--vport-modbus-tcp``) serve the module. The clients are the real ones a user
points at the bridge: pymodbus configured exactly as Home Assistant's ModBus integration configures
it (``type: tcp`` and ``type: rtuovertcp``), and ``aurora_fetch tcp://…``. Values are compared with
the sim's registers; writes with the sim's write log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from aurora import registers, rtu
from aurora.sim.cli import demo_registers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from tests.support import Broker, Collector, free_port, wait_for, wait_for_port
from tests.support.bridge import BIN, Bridge
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.sim import Sim, write_log

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
REGS = demo_registers()
ROOT = f"homie/{DEVICE}"
HEALTH = f"{ROOT}/$health"
REPO = Path(__file__).resolve().parents[2]
MC_CLIENT = REPO / "tests" / "hass" / "modbus_connection_client.py"
TIMEOUT_S = 10.0


@dataclass
class Stack:
    broker: Broker
    sim: Sim
    bridge: Bridge
    writes: Path
    rtu_port: int
    tcp_port: int
    health_messages: Collector

    def written(self) -> list[tuple[int, int]]:
        return write_log(self.writes)

    def health(self) -> dict[str, Any]:
        """The latest $health document."""
        self.health_messages.wait_for(HEALTH, TIMEOUT_S)
        doc: dict[str, Any] = json.loads(self.health_messages.received(HEALTH)[-1].payload)
        return doc

    def health_where(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """Wait for a $health document (published every few seconds) that satisfies ``predicate``."""

        def matching() -> dict[str, Any] | None:
            doc = self.health()
            return doc if predicate(doc) else None

        return wait_for(matching, 30.0, what)


@contextlib.contextmanager
def vport_stack(tmp: Path, *extra: str) -> Iterator[Stack]:
    """mosquitto, the demo sim over TCP and a bridge with both virtual ports, ready and listening."""
    writes = tmp / "writes.log"
    rtu_port, tcp_port = free_port(), free_port()
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift", "--write-log", str(writes)) as sim,
        Bridge.start(
            tmp,
            broker,
            sim.url,
            "--vport-rtu",
            str(rtu_port),
            "--vport-modbus-tcp",
            f"127.0.0.1:{tcp_port}",
            *extra,
        ) as bridge,
    ):
        wait_for_port(HOST, rtu_port, TIMEOUT_S)
        wait_for_port(HOST, tcp_port, TIMEOUT_S)
        health = Collector(broker.client("homeassistant"), HEALTH)
        yield Stack(broker, sim, bridge, writes, rtu_port, tcp_port, health)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with vport_stack(tmp_path_factory.mktemp("vports")) as s:
        yield s


def ha_client(port: int, framer: FramerType) -> AsyncModbusTcpClient:
    """What Home Assistant's ModbusHub builds for ``type: tcp`` (SOCKET) or ``rtuovertcp`` (RTU)."""
    return AsyncModbusTcpClient(HOST, port=port, framer=framer, timeout=5, retries=3)


async def ha_read(client: AsyncModbusTcpClient, address: int, count: int, device_id: int = 1) -> list[int]:
    result = await client.read_holding_registers(address, count=count, device_id=device_id)
    assert not result.isError(), result
    return list(result.registers)


def fetch(url: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "aurora_fetch"), url, *args], capture_output=True, text=True, timeout=timeout
    )


def exchange(port: int, frame: bytes, expect: int, timeout_s: float = TIMEOUT_S) -> bytes:
    """Send ``frame`` and read until ``expect`` bytes came (or the deadline)."""
    with socket.create_connection((HOST, port), timeout=timeout_s) as sock:
        sock.sendall(frame)
        got = b""
        end = time.monotonic() + timeout_s
        while len(got) < expect and time.monotonic() < end:
            try:
                chunk = sock.recv(expect - len(got))
            except TimeoutError:
                break  # silence: what a board that does not answer gives
            if not chunk:
                break
            got += chunk
        return got


# ---------------------------------------------------------------- reads


@pytest.mark.parametrize("framer", [FramerType.SOCKET, FramerType.RTU], ids=["modbus-tcp", "rtu-over-tcp"])
def test_home_assistant_client_reads_the_sims_values(stack: Stack, framer: FramerType) -> None:
    """HA's own client (pymodbus as ModbusHub sets it up) reads blocks with FC 3 through each port."""
    port = stack.tcp_port if framer == FramerType.SOCKET else stack.rtu_port

    async def run() -> None:
        client = ha_client(port, framer)
        await client.connect()
        try:
            assert await ha_read(client, 745, 3) == [REGS[a] for a in (745, 746, 747)]
            assert await ha_read(client, 88, 4) == [REGS[a] for a in range(88, 92)]  # model name
            assert await ha_read(client, 1105, 20) == [REGS[a] for a in range(1105, 1125)]
        finally:
            client.close()

    asyncio.run(run())


def test_modbus_tcp_unit_ids(stack: Stack) -> None:
    """Unit 255 reaches the board as unit 1 does; another unit gets exception 11 (no such target)."""

    async def run() -> None:
        client = ha_client(stack.tcp_port, FramerType.SOCKET)
        await client.connect()
        try:
            assert await ha_read(client, 745, 2, device_id=255) == [REGS[745], REGS[746]]
            result = await client.read_holding_registers(745, count=2, device_id=7)
            assert result.isError() and result.exception_code == 11
        finally:
            client.close()

    asyncio.run(run())


def test_rtu_reply_is_the_boards_frame(stack: Stack) -> None:
    """Raw RTU: the FC 65 and FC 66 examples of the protocol come back byte for byte."""
    request = rtu.read_ranges([(745, 2), (1110, 2)])
    expected = rtu.encode_reply(request, [REGS[a] for a in request.addresses])
    assert exchange(stack.rtu_port, request.encode(), len(expected)) == expected
    request = rtu.read_registers([2, 8, 25])
    expected = rtu.encode_reply(request, [REGS[a] for a in request.addresses])
    assert exchange(stack.rtu_port, request.encode(), len(expected)) == expected


def test_board_exception_passes_through(stack: Stack) -> None:
    """A register the unit lacks: the board's own exception 2, on both ports."""
    missing = next(a for a in range(60000, 65000) if a not in REGS)
    request = rtu.read_holding(missing, 1)
    assert exchange(stack.rtu_port, request.encode(), 5) == rtu.encode_exception(request, 2)
    mbap = struct.pack(">HHHBBHH", 0x1234, 0, 6, 1, 3, missing, 1)
    assert exchange(stack.tcp_port, mbap, 9) == struct.pack(">HHHBBB", 0x1234, 0, 3, 1, 0x83, 2)


def test_aurora_fetch_valid_through_the_virtual_port(stack: Stack) -> None:
    """`aurora_fetch tcp://bridge:PORT/ valid` works as against ser2net, with the sim's values."""
    done = fetch(f"tcp://{HOST}:{stack.rtu_port}/", "valid", "--yaml")
    assert done.returncode == 0, done.stderr
    values = yaml.safe_load(done.stdout)
    assert len(values) > 300
    assert {a: v for a, v in values.items() if a in REGS} == {a: REGS[a] for a in values if a in REGS}


def ha_venv(python: Path, module: str) -> Path:
    """.venv-ha's Python (the ``ha_python`` fixture, which waits for `make test`'s build of it),
    able to import ``module``; its absence fails under CI and skips elsewhere."""
    if subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode != 0:
        reason = f".venv-ha cannot import {module}: run `make hass-venv` (part of `make test`)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return python


@pytest.mark.parametrize("kind", ["tcp", "rtuovertcp"])
def test_home_assistants_modbus_integration_with_the_documented_config(
    stack: Stack, kind: str, tmp_path: Path, ha_python: Path
) -> None:
    """docs/network-serial.md's configuration.yaml passes HA's own schema, and HA's ModbusHub reads
    the sensor through the bridge; its write to a read-only register is refused and never made."""
    python = ha_venv(ha_python, "homeassistant.components.modbus.modbus")
    docs = (REPO / "docs" / "network-serial.md").read_text()
    block = docs[docs.index("```yaml\nmodbus:") + len("```yaml\n") :]
    block = block[: block.index("```")]
    port = stack.tcp_port if kind == "tcp" else stack.rtu_port
    config = block.replace("bridge-host", HOST).replace("port: 5020", f"port: {port}")
    config = config.replace("type: tcp ", f"type: {kind} ")
    assert f"type: {kind} " in config and f"port: {port}" in config
    (tmp_path / "configuration.yaml").write_text(config)
    done = subprocess.run(
        [
            str(python),
            str(REPO / "tests" / "hass" / "ha_modbus_client.py"),
            str(tmp_path / "configuration.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result == {"sensors": {"Heating set point": [REGS[745]]}, "refused_write": None}
    assert (745, 700) not in stack.written()


@pytest.mark.parametrize("framer", ["socket", "rtu"], ids=["modbus-tcp", "rtu-over-tcp"])
def test_modbus_connection_library_reads_and_is_refused(stack: Stack, framer: str, ha_python: Path) -> None:
    """home-assistant-libs/modbus-connection (Python >= 3.12, so run by .venv-ha): concurrent reads
    on one shared connection get the sim's values; a write to a read-only register gets exception 1."""
    python = ha_venv(ha_python, "modbus_connection.pymodbus")
    port = stack.tcp_port if framer == "socket" else stack.rtu_port
    blocks = [(745, 3), (88, 4), (1105, 20), (2, 1)]
    done = subprocess.run(
        [str(python), str(MC_CLIENT), HOST, str(port), framer, *(f"{a}:{n}" for a, n in blocks)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["reads"] == [[REGS[a] for a in range(start, start + n)] for start, n in blocks]
    assert result["refused_write"] == 1
    assert (745, 700) not in stack.written()


def mbpoll() -> str:
    """mbpoll (libmodbus's command-line master; `make setup` installs it): fails under CI, skips elsewhere."""
    found = shutil.which("mbpoll")
    if found is None:
        reason = "mbpoll is not installed: run `make setup`"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_mbpoll_as_the_readme_shows_it(stack: Stack) -> None:
    """The README's mbpoll line (Modbus/TCP, unit 1, zero-based 745, three registers) reads the
    sim's values; its write to a register that is not writable is refused and never made."""
    tool = mbpoll()
    base = [tool, "-m", "tcp", "-p", str(stack.tcp_port), "-a", "1", "-t", "4", "-0", "-1", "-o", "5"]
    done = subprocess.run([*base, "-r", "745", "-c", "3", HOST], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    read = {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", done.stdout, re.M)}
    assert read == {a: REGS[a] for a in (745, 746, 747)}
    refused = subprocess.run([*base, "-r", "745", HOST, "700"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "illegal function" in (refused.stdout + refused.stderr).lower()
    assert (745, 700) not in stack.written()


def test_a_serial_only_tool_through_socat_and_the_rtu_port(stack: Stack, tmp_path: Path) -> None:
    """docs/network-serial.md: socat turns the RTU port into a local serial device, and mbpoll's
    RTU mode (a tool that only knows serial ports) reads through it."""
    tool = mbpoll()
    link = tmp_path / "ttyBridge"
    socat = subprocess.Popen(
        ["socat", f"pty,link={link},raw,echo=0", f"tcp:{HOST}:{stack.rtu_port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(link.exists, TIMEOUT_S, "socat's pty")
        argv = [tool, "-m", "rtu", "-b", "19200", "-P", "even", "-a", "1", "-t", "4", "-0", "-1", "-o", "5"]
        done = subprocess.run(
            [*argv, "-r", "88", "-c", "4", str(link)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        read = {int(a): int(v) for a, v in re.findall(r"^\[(\d+)\]:\s+(-?\d+)", done.stdout, re.M)}
        assert read == {a: REGS[a] for a in range(88, 92)}
    finally:
        socat.terminate()
        socat.wait(10)


# ---------------------------------------------------------------- many clients


def test_several_clients_at_once_get_their_own_replies(stack: Stack) -> None:
    """Two `aurora_fetch valid`, an HA client on each port reading different blocks, and the poller
    at once: every reply is the client's own and right, and polling goes on: a set point written
    through a virtual port shows up in Homie (through the poll of the register it reads back from)
    while the fetches are still running."""
    before = stack.health()
    blocks = [(745, 3), (88, 4), (1105, 20), (2, 1), (3001, 2)]
    # Zone 1's heating set point: written at 21203, read back (by the poller) from 31008/31009.
    changed = {21203, 31008, 31009}
    topic = f"{ROOT}/zone1/heating-target-temperature"
    homie = Collector(stack.broker.client("homeassistant"), topic)
    homie.wait_for(topic, TIMEOUT_S)
    updated_at: list[float] = []

    async def set_point(raw: int, shown: bytes) -> float:
        seen = len(homie.received(topic))
        client = ha_client(stack.tcp_port, FramerType.SOCKET)
        await client.connect()
        try:
            assert not (await client.write_register(21203, raw, device_id=1)).isError()
        finally:
            client.close()
        end = time.monotonic() + 60
        while not any(m.payload == shown for m in homie.received(topic)[seen:]):
            assert time.monotonic() < end, f"{topic} never showed {shown!r}"
            await asyncio.sleep(0.05)
        return time.monotonic()

    errors: list[str] = []
    latencies: list[float] = []

    async def ha_loop(port: int, framer: FramerType, rounds: int) -> None:
        client = ha_client(port, framer)
        await client.connect()
        try:
            for i in range(rounds):
                start, count = blocks[i % len(blocks)]
                t0 = time.monotonic()
                got = await ha_read(client, start, count)
                latencies.append(time.monotonic() - t0)
                if got != [REGS[a] for a in range(start, start + count)]:
                    errors.append(f"{framer} {start}+{count}: {got}")
        finally:
            client.close()

    fetch_s: list[float] = []
    fetch_end: list[float] = []

    def fetches() -> list[subprocess.CompletedProcess[str]]:
        t0 = time.monotonic()
        procs = [
            subprocess.Popen(
                [str(BIN / "aurora_fetch"), f"tcp://{HOST}:{stack.rtu_port}/", "valid", "--yaml"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        done = [subprocess.CompletedProcess(p.args, 0, *p.communicate(timeout=180)) for p in procs]
        for d, p in zip(done, procs, strict=True):
            d.returncode = p.returncode
        fetch_s.append(time.monotonic() - t0)
        fetch_end.append(time.monotonic())
        return done

    results: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(target=lambda: results.extend(fetches()))
    thread.start()

    async def homie_while_loaded() -> None:
        updated_at.append(await set_point(710, b"71.0"))

    async def clients() -> None:
        await asyncio.gather(
            ha_loop(stack.tcp_port, FramerType.SOCKET, 40),
            ha_loop(stack.rtu_port, FramerType.RTU, 40),
            ha_loop(stack.tcp_port, FramerType.SOCKET, 40),
            homie_while_loaded(),
        )

    try:
        asyncio.run(clients())
        thread.join(200)
    finally:
        asyncio.run(set_point(REGS[21203], b"68.0"))  # as it was, for the other tests
    assert not errors
    assert fetch_end and updated_at[0] < fetch_end[0], "Homie updated only after the load"
    # Each request waits for the others' one transaction each, never for a whole `valid` (32
    # transactions) of a fetch running at the same time.
    assert fetch_s and max(latencies) < fetch_s[0] / 4, (max(latencies), fetch_s)
    for done in results:
        assert done.returncode == 0, done.stderr
        values = yaml.safe_load(done.stdout)
        known = [a for a in values if a in REGS and a not in changed]
        assert {a: values[a] for a in known} == {a: REGS[a] for a in known}
    after = stack.health_where(
        lambda h: h["vports"]["requests"] >= before["vports"]["requests"] + 120,
        "the clients' requests counted",
    )
    assert after["vports"]["connections"] >= before["vports"]["connections"] + 5
    assert after["poll"]["good_cycles"] > before["poll"]["good_cycles"]
    assert after["worker"]["most_polls_waited"] <= 1


# ---------------------------------------------------------------- writes


def test_write_reaches_board_and_homie(stack: Stack) -> None:
    """FC 6 through Modbus/TCP: the board gets it, the client gets the echo, Homie shows it at once."""
    topic = f"{ROOT}/blower/blower-only-speed"
    values = Collector(stack.broker.client("homeassistant"), topic)
    values.wait_for(topic, TIMEOUT_S)
    new = 8 if REGS[340] != 8 else 9

    async def run() -> None:
        client = ha_client(stack.tcp_port, FramerType.SOCKET)
        await client.connect()
        try:
            result = await client.write_register(340, new, device_id=1)
            assert not result.isError(), result
            assert await ha_read(client, 340, 1) == [new]
        finally:
            client.close()

    asyncio.run(run())
    wait_for(lambda: (340, new) in stack.written(), TIMEOUT_S, "the write in the sim's log")
    wait_for(
        lambda: any(m.payload == str(new).encode() for m in values.received(topic)), TIMEOUT_S, "Homie value"
    )


def test_refused_writes_never_reach_the_board(stack: Stack) -> None:
    """Not writable -> exception 1, out of range -> exception 3, on both ports; none in the write log."""
    before = len(stack.written())
    not_writable = rtu.write_single(745, 700)  # the read-back set point, not its write register
    out_of_range = rtu.write_single(340, 13)  # blower speeds are 1..12
    assert exchange(stack.rtu_port, not_writable.encode(), 5) == rtu.encode_exception(not_writable, 1)
    assert exchange(stack.rtu_port, out_of_range.encode(), 5) == rtu.encode_exception(out_of_range, 3)
    multiple = rtu.write_multiple(340, [5, 999])
    assert exchange(stack.rtu_port, multiple.encode(), 5) == rtu.encode_exception(multiple, 3)
    listed = rtu.write_registers([(340, 4), (745, 1)])
    assert exchange(stack.rtu_port, listed.encode(), 5) == rtu.encode_exception(listed, 1)
    mbap = struct.pack(">HHHBBHH", 7, 0, 6, 1, 6, 745, 700)
    assert exchange(stack.tcp_port, mbap, 9) == struct.pack(">HHHBBB", 7, 0, 3, 1, 0x86, 1)
    fc68 = rtu.Request(1, rtu.FunctionCode.UNKNOWN_68, raw=b"\x00\x01\x00\x00")
    assert exchange(stack.rtu_port, fc68.encode(), 5) == rtu.encode_exception(fc68, 1)
    # A write that is allowed, afterwards: the log is read up to it, so nothing refused is pending.
    allowed = rtu.write_single(340, 6)
    assert exchange(stack.rtu_port, allowed.encode(), 8) == allowed.encode()
    wait_for(lambda: (340, 6) in stack.written()[before:], TIMEOUT_S, "the allowed write")
    assert stack.written()[before:] == [(340, 6)]


def test_read_only_ports_refuse_every_write(tmp_path: Path) -> None:
    with vport_stack(tmp_path, "--vport-read-only") as s:
        allowed_elsewhere = rtu.write_single(340, 5)
        assert exchange(s.rtu_port, allowed_elsewhere.encode(), 5) == rtu.encode_exception(
            allowed_elsewhere, 1
        )
        mbap = struct.pack(">HHHBBHH", 9, 0, 6, 1, 6, 340, 5)
        assert exchange(s.tcp_port, mbap, 9) == struct.pack(">HHHBBB", 9, 0, 3, 1, 0x86, 1)
        read = rtu.read_holding(745, 1)
        assert exchange(s.rtu_port, read.encode(), 7) == rtu.encode_reply(read, [REGS[745]])
        s.health_where(lambda h: h["vports"]["refused_writes"] == 2, "two refused writes counted")
        assert s.written() == []


# ---------------------------------------------------------------- fuzz


def _with_crc(body: bytes) -> bytes:
    return body + rtu.crc16(body).to_bytes(2, "little")


_rtu_frames = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda f, a, v: _with_crc(bytes((1, f)) + struct.pack(">HH", a, v)),
        st.sampled_from([3, 6, 16, 65, 66, 67, 68]),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
    ),
)
_mbap_frames = st.builds(
    lambda tid, unit, pdu: struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu,
    st.integers(0, 0xFFFF),
    st.sampled_from([1, 255, 3]),
    st.binary(min_size=1, max_size=40),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rtu_bytes=st.lists(_rtu_frames, max_size=3), tcp_bytes=st.lists(_mbap_frames, max_size=3))
def test_fuzz_against_the_bridge(stack: Stack, rtu_bytes: list[bytes], tcp_bytes: list[bytes]) -> None:
    """Random frames on both ports of the real bridge: it keeps serving, and whatever reached the
    board is a write the register map allows."""
    with (
        socket.create_connection((HOST, stack.rtu_port)) as r,
        socket.create_connection((HOST, stack.tcp_port)) as t,
    ):
        r.sendall(b"".join(rtu_bytes))
        t.sendall(b"".join(tcp_bytes))
        check = rtu.read_holding(745, 1)
        # A fresh connection: the fuzzed one may hold a partial frame.
        assert exchange(stack.rtu_port, check.encode(), 7) == rtu.encode_reply(check, [REGS[745]])
    assert stack.bridge.process.poll() is None
    for address, value in stack.written():
        rule = registers.writable(address)
        assert rule is not None and rule.problem(value) is None, (address, value)


def test_writes_refused_while_the_line_is_down(tmp_path: Path) -> None:
    """The sim gone: a write is refused at once (Modbus/TCP exception 11, RTU silence), and when the
    line comes back it is not made after all; reads work again."""
    sim_port, rtu_port, tcp_port = free_port(), free_port(), free_port()
    writes = tmp_path / "writes.log"
    sim_args = ("--tcp", f"127.0.0.1:{sim_port}", "--no-drift", "--write-log", str(writes))
    with Broker.start(tmp_path) as broker:
        state = Collector(broker.client("homeassistant"), f"{ROOT}/$state")
        first = Sim.start(tmp_path, *sim_args)
        sim = first.__enter__()
        try:
            with Bridge.start(
                tmp_path,
                broker,
                sim.url,
                "--vport-rtu",
                str(rtu_port),
                "--vport-modbus-tcp",
                str(tcp_port),
            ):
                wait_for_port(HOST, tcp_port, TIMEOUT_S)
                first.__exit__(None, None, None)  # the heat pump's line is gone
                wait_for(
                    lambda: any(m.payload == b"alert" for m in state.received(f"{ROOT}/$state")),
                    30,
                    "$state alert",
                )
                t0 = time.monotonic()
                mbap = struct.pack(">HHHBBHH", 3, 0, 6, 1, 6, 340, 5)
                assert exchange(tcp_port, mbap, 9) == struct.pack(">HHHBBB", 3, 0, 3, 1, 0x86, 11)
                assert time.monotonic() - t0 < 5  # refused, not queued
                assert exchange(rtu_port, rtu.write_single(340, 5).encode(), 1, timeout_s=2) == b""
                with Sim.start(tmp_path, *sim_args):
                    read = rtu.read_holding(745, 1)
                    wait_for(
                        lambda: (
                            exchange(rtu_port, read.encode(), 7, timeout_s=2)
                            == rtu.encode_reply(read, [REGS[745]])
                        ),
                        60,
                        "reads through the virtual port again",
                    )
                    assert (340, 5) not in write_log(writes)
        finally:
            first.__exit__(None, None, None)
