"""What a virtual port adds to a read, over the same read through ser2net; then 20 virtual-port
clients at once while the bridge polls.

    .venv/bin/python -m tests.perf.bench_vports [--samples 300] [--clients 20] [--seconds 20]

Both paths end at an identical paced sim (19200 baud, 1 ms turnaround) behind a real ser2net (raw
TCP, chardelay off as docs/network-serial.md configures it). The direct path is this suite's RTU
client on ser2net; the virtual-port path is the same client on the bridge's ``--vport-rtu`` (the
bridge itself on the second ser2net), and a minimal Modbus/TCP client on ``--vport-modbus-tcp``.
The difference of the latency distributions is what the bridge adds. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from aurora import rtu
from aurora.bus import Bus
from aurora.logs import configure_logging
from aurora.ports import open_bus
from aurora.sim.cli import demo_registers

from tests.support import Broker, Collector, free_port, wait_for_port
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.bridge import Bridge
from tests.support.ser2net import Ser2net
from tests.support.sim import Sim

SIM_ARGS = ["--no-drift", "--turnaround-ms", "1"]
QUIET = ["--fast-interval", "3600", "--medium-interval", "3600", "--slow-interval", "3600"]
POLLING = ["--fast-interval", "1", "--medium-interval", "5", "--slow-interval", "30"]
READ = (745, 3)  # FC 3, 3 registers: 8 + 11 bytes, ~12 ms on the wire
GOAL_ADDED_MEDIAN_MS = 2.0
GOAL_LINE_BUSY = 0.5  # 20 clients keep the line at least this busy: no idle gaps between their turns
DISTINCT = sorted(demo_registers())[200:240:2]  # 20 registers of the demo unit, one per client
HOST = "127.0.0.1"


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(statistics.quantiles(ordered, n=100)[98] * 1000, 3),
        "n": len(ordered),
    }


def _timed(call: Callable[[], object], samples: int) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


class MbapClient:
    """The least a Modbus/TCP client does: one FC 3 request, wait for its reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.tid = 0

    def read_holding(self, start: int, count: int) -> list[int]:
        self.tid = (self.tid + 1) & 0xFFFF
        self.sock.sendall(struct.pack(">HHHBBHH", self.tid, 0, 6, 1, 3, start, count))
        want = 9 + 2 * count
        got = b""
        while len(got) < want:
            chunk = self.sock.recv(want - len(got))
            if not chunk:
                raise ConnectionError("closed")
            got += chunk
        tid, _, _, _, function = struct.unpack(">HHHBB", got[:8])
        if tid != self.tid or function != 3:
            raise ValueError(f"reply {got.hex()} to transaction {self.tid}")
        return list(struct.unpack(f">{count}H", got[9:]))

    def close(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def sim_behind_ser2net(tmp: Path, name: str) -> Iterator[str]:
    """A paced sim on a pty with ser2net (raw TCP) in front: its URL."""
    where = tmp / name
    where.mkdir()
    with Sim.start(where, *SIM_ARGS) as sim, Ser2net.start(where, device=sim.url) as s2n:
        yield s2n.raw_url


def bridge_args(rtu_port: int, tcp_port: int, *extra: str) -> list[str]:
    return ["--vport-rtu", str(rtu_port), "--vport-modbus-tcp", str(tcp_port), *extra]


def single_client(direct: Bus, vport: Bus, mbap: MbapClient, samples: int) -> dict[str, Any]:
    start, count = READ
    d: list[float] = []
    v: list[float] = []
    m: list[float] = []
    expected = direct.read_holding(start, count)
    assert vport.read_holding(start, count) == expected and mbap.read_holding(start, count) == expected
    # Alternating the paths spreads any slow spell of the machine over all of them alike.
    for _ in range(samples // 10):
        d += _timed(lambda: direct.read_holding(start, count), 10)
        v += _timed(lambda: vport.read_holding(start, count), 10)
        m += _timed(lambda: mbap.read_holding(start, count), 10)
    direct_ms, rtu_ms, mbap_ms = _ms(d), _ms(v), _ms(m)
    return {
        "request": f"read_holding {READ} (FC 3, {count} registers)",
        "direct_ser2net": direct_ms,
        "vport_rtu": rtu_ms,
        "vport_modbus_tcp": mbap_ms,
        "added_ms": {
            "rtu_median": round(rtu_ms["median_ms"] - direct_ms["median_ms"], 3),
            "rtu_p99": round(rtu_ms["p99_ms"] - direct_ms["p99_ms"], 3),
            "modbus_tcp_median": round(mbap_ms["median_ms"] - direct_ms["median_ms"], 3),
            "modbus_tcp_p99": round(mbap_ms["p99_ms"] - direct_ms["p99_ms"], 3),
        },
    }


def health(broker: Broker) -> dict[str, Any]:
    watch = Collector(broker.client("fetch"), f"homie/{DEVICE}/$health")
    doc: dict[str, Any] = json.loads(watch.wait_for(f"homie/{DEVICE}/$health", 10).payload)
    return doc


def load(rtu_port: int, tcp_port: int, clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` clients (half RTU, half Modbus/TCP), each reading its own register back to back."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = [0.0]
    started = [0.0]

    def begin() -> None:  # when every client is connected: the measured time starts
        started[0] = time.perf_counter()
        stop_at[0] = time.monotonic() + seconds

    go = threading.Barrier(clients, action=begin)
    regs = demo_registers()

    def run(n: int) -> None:
        address = DISTINCT[n % len(DISTINCT)]
        client: Any = open_bus(f"tcp://{HOST}:{rtu_port}/") if n % 2 else MbapClient(tcp_port)
        mine: list[float] = []
        try:
            go.wait(30)
            while time.monotonic() < stop_at[0]:
                t0 = time.perf_counter()
                try:
                    values = client.read_holding(address, 1)
                except Exception as err:  # counted: the figures say how many failed
                    with lock:
                        errors.append(repr(err))
                    continue
                mine.append(time.perf_counter() - t0)
                if values != [regs[address]]:
                    with lock:
                        errors.append(f"{address}: {values}")
        finally:
            client.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started[0]
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 1),
        "latency": _ms(latencies) if len(latencies) > 1 else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args(argv)
    configure_logging(stream=sys.stderr)  # stdout carries only the JSON (a retry's warning broke it)
    tmp = Path(tempfile.mkdtemp(prefix="bench-vports-"))
    rtu_port, tcp_port = free_port(), free_port()
    try:
        with (
            Broker.start(tmp) as broker,
            sim_behind_ser2net(tmp, "direct") as direct_url,
            sim_behind_ser2net(tmp, "bridged") as bridged_url,
        ):
            with Bridge.start(
                tmp, broker, bridged_url, *bridge_args(rtu_port, tcp_port), poll=QUIET, name="quiet"
            ):
                wait_for_port(HOST, rtu_port, 10)
                direct, vport, mbap = (
                    open_bus(direct_url),
                    open_bus(f"tcp://{HOST}:{rtu_port}/"),
                    MbapClient(tcp_port),
                )
                try:
                    single = single_client(direct, vport, mbap, args.samples)
                finally:
                    direct.close()
                    vport.close()
                    mbap.close()
            max_clients = str(max(args.clients + 4, 16))
            with Bridge.start(
                tmp,
                broker,
                bridged_url,
                *bridge_args(rtu_port, tcp_port, "--vport-max-clients", max_clients),
                poll=POLLING,
                name="polling",
            ):
                wait_for_port(HOST, rtu_port, 10)
                before = health(broker)
                loaded = load(rtu_port, tcp_port, args.clients, args.seconds)
                time.sleep(6)  # $health is republished every 5 s: take one written after the load
                after = health(broker)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    line_s = rtu.wire_time_s(8 + 7) + 0.001  # one 1-register FC 3 exchange plus the sim's turnaround
    polls = after["poll"]["good_cycles"] - before["poll"]["good_cycles"]
    report = {
        "single_client": single,
        "goal": {
            "added_median_ms_below": GOAL_ADDED_MEDIAN_MS,
            "met": single["added_ms"]["rtu_median"] < GOAL_ADDED_MEDIAN_MS
            and single["added_ms"]["modbus_tcp_median"] < GOAL_ADDED_MEDIAN_MS,
            "line_busy_at_least": GOAL_LINE_BUSY,
        },
        "twenty_clients_while_polling": {
            "note": "each client reads its own register (nothing to coalesce) back to back; half on the RTU "
            "port, half on Modbus/TCP; the bridge polls its fast tier every second",
            **loaded,
            "line_busy_fraction": round(loaded["requests_per_s"] * line_s, 3),
            "poll_cycles_during": polls,
            "most_poll_transactions_waited": after["worker"].get("most_polls_waited"),
            "vport_counters": after.get("vports"),
        },
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
