"""Scenario 1 of `make bench`: a fetch against the paced sim, as wall time over the line's minimum.

Paths: the sim's pty directly, its TCP port, ser2net (raw TCP and RFC 2217) in front of its pty,
and the broker (TLS, QoS 1) through the bridge's `$modbus` request/response topics. ser2net is
configured as docs/network-serial.md has it (``chardelay: false``); ser2net's own default
(``chardelay`` on, which holds each reply about two characters after the board's last byte) is
measured beside it on the raw port, so its cost to a user who kept it is known
(``ser2net_default_chardelay_cost_ms``).
The minimum is the wire time of every byte exchanged (0.573 ms each at 19200 8E1) plus the sim's
fixed turnaround per transaction; the query time is measured in-process after the port is open,
and the opening and a whole `aurora_fetch` process are reported beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aurora import rtu
from aurora.logs import configure_logging
from aurora.ports import open_bus
from aurora.query import read_query

from tests.perf.bench_passthrough import BASE
from tests.support import Broker
from tests.support.bridge import Bridge
from tests.support.ser2net import Ser2net
from tests.support.sim import Sim

BIN = Path(sys.executable).parent
TURNAROUND_MS = 1.0
RECONNECT_GAP_S = 0.05
QUERIES = {"small": "745-747", "valid": "valid"}


@contextlib.contextmanager
def path_to_sim(kind: str, tmp: Path) -> Iterator[str]:
    """A URL that reaches a fresh paced sim by ``kind``: pty, tcp, ser2net-tcp, ser2net-rfc2217."""
    args = ["--no-drift", "--turnaround-ms", str(TURNAROUND_MS)]
    if kind == "broker":
        # The bridge polls at its default intervals, as users run it: a fetch then sometimes
        # waits for a poll transaction, and its p99 shows that.
        with (
            Broker.start(tmp) as broker,
            Sim.start(tmp, *args, "--tcp", "127.0.0.1:0") as sim,
            Bridge.start(tmp, broker, sim.url, poll=()),
            _environment(broker),
        ):
            yield broker.url("fetch", BASE)
        return
    if kind == "tcp":
        with Sim.start(tmp, *args, "--tcp", "127.0.0.1:0") as sim:
            yield sim.url
        return
    with Sim.start(tmp, *args) as sim:
        if kind == "pty":
            yield sim.url
            return
        # chardelay off, as docs/network-serial.md configures it; "ser2net-tcp-chardelay" is ser2net's
        # own default (it holds device bytes ~2 characters): what keeping the default costs, measured.
        with Ser2net.start(tmp, device=sim.url, chardelay=kind == "ser2net-tcp-chardelay") as s2n:
            yield s2n.rfc2217_url if kind == "ser2net-rfc2217" else s2n.raw_url


@contextlib.contextmanager
def _environment(broker: Broker) -> Iterator[None]:
    """AURORA_MQTT_PASSWORD_FILE and AURORA_MQTT_CA_FILE for fetch's user, as a user would set them."""
    saved = {k: os.environ.get(k) for k in ("AURORA_MQTT_PASSWORD_FILE", "AURORA_MQTT_CA_FILE")}
    os.environ["AURORA_MQTT_PASSWORD_FILE"] = str(broker.password_file("fetch"))
    os.environ["AURORA_MQTT_CA_FILE"] = str(broker.ca_file)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def measure(url: str, query: str, repeats: int) -> dict[str, float | int]:
    """Median query time in-process, its line minimum, and the ratio; plus open time."""
    walls, minima, opens = [], [], []
    transactions = 0
    for _ in range(repeats):
        # ser2net is still closing the device for ~20 ms after a client leaves, and a connection made
        # in that time waits for it; separate fetch processes are never that close together.
        time.sleep(RECONNECT_GAP_S)
        t0 = time.perf_counter()
        bus = open_bus(url)
        t1 = time.perf_counter()
        try:
            result = read_query(bus, query)
            t2 = time.perf_counter()
        finally:
            bus.close()
        stats = bus.stats
        transactions = stats.transactions
        wire = (stats.bytes_sent + stats.bytes_received) * rtu.BYTE_TIME_S
        minima.append(wire + transactions * TURNAROUND_MS / 1000)  # 0 through MQTT: set by the caller
        walls.append(t2 - t1)
        opens.append(t1 - t0)
        assert result.values, "the query read nothing"
    wall, minimum = statistics.median(walls), statistics.median(minima)
    return {
        "wall_s": round(wall, 4),
        "p99_s": round(p99(walls), 4),
        "runs": len(walls),
        "minimum_s": round(minimum, 4),
        "ratio": round(wall / minimum, 3) if minimum else None,
        "open_s": round(statistics.median(opens), 4),
        "transactions": transactions,
        "registers": len(result.values),
    }


def p99(values: list[float]) -> float:
    """Nearest-rank 99th percentile (the largest of fewer than 100 runs but one per hundred)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-99 * len(ordered) // 100) - 1))]


def process_time(url: str, query: str, repeats: int) -> dict[str, float | int]:
    """p50 and p99 wall time of a whole `aurora_fetch` process (Python start-up included)."""
    times = []
    for _ in range(repeats):
        time.sleep(RECONNECT_GAP_S)  # as measure(): ser2net closes the device after a client
        t0 = time.perf_counter()
        subprocess.run([str(BIN / "aurora_fetch"), url, query], check=True, capture_output=True, timeout=120)
        times.append(time.perf_counter() - t0)
    return {"p50_s": round(statistics.median(times), 4), "p99_s": round(p99(times), 4), "runs": len(times)}


def run(repeats_small: int = 60, repeats_valid: int = 8) -> dict[str, object]:
    """Every path × query; JSON-ready."""
    byte_ms = round(rtu.BYTE_TIME_S * 1000, 4)
    out: dict[str, object] = {"turnaround_ms": TURNAROUND_MS, "byte_time_ms": byte_ms}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("pty", "tcp", "ser2net-tcp", "ser2net-tcp-chardelay", "ser2net-rfc2217", "broker"):
            sub = Path(tmp) / kind
            sub.mkdir()
            sub.chmod(0o711)
            with path_to_sim(kind, sub) as url:
                row: dict[str, Any] = {}
                if kind == "ser2net-tcp-chardelay":  # only what ser2net's default costs
                    row["small"] = measure(url, QUERIES["small"], repeats_small)
                    out[kind] = row
                    continue
                for name, query in QUERIES.items():
                    repeats = repeats_small if name == "small" else repeats_valid
                    if kind == "ser2net-rfc2217" and name == "small":
                        repeats //= 2  # each run opens the port: 0.45 s of RFC 2217 negotiation
                    row[name] = measure(url, query, repeats)
                    if kind == "broker":
                        # The bridge's bytes on the line are those of the direct path: same plan.
                        direct = out["tcp"][name]  # type: ignore[index]
                        wall = row[name]["wall_s"]
                        row[name].update(minimum_s=direct["minimum_s"], transactions=direct["transactions"])
                        row[name]["ratio"] = round(wall / direct["minimum_s"], 3)
                # The whole process beside the in-process query above (start-up and open included).
                row["small_process"] = process_time(url, QUERIES["small"], 11)
                out[kind] = row
    _chardelay_cost(out)
    return out


def _chardelay_cost(out: dict[str, Any]) -> None:
    """What ser2net's default ``chardelay`` adds to a small read: the read with it on, less the same
    read through the documented configuration (off), in the same run."""
    on, off = out.get("ser2net-tcp-chardelay", {}).get("small"), out.get("ser2net-tcp", {}).get("small")
    if on and off:
        out["ser2net_default_chardelay_cost_ms"] = round(max(0.0, on["wall_s"] - off["wall_s"]) * 1000, 2)


if __name__ == "__main__":
    configure_logging(stream=sys.stderr)  # stdout carries only the JSON
    print(json.dumps(run(), indent=2))
