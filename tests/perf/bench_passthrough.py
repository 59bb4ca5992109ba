"""What the MQTT pass-through adds to a read: the same request through the broker (TLS, QoS 1) and
the bridge, versus straight to a sim over TCP; then 20 clients at once while the bridge polls.

    .venv/bin/python -m tests.perf.bench_passthrough [--samples 300] [--clients 20] [--rounds 50]

Both paths end at an identical paced sim (19200 baud, 1 ms turnaround), so the difference of the
two latency distributions is what MQTT, TLS and the bridge add. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aurora.bus import Bus
from aurora.logs import configure_logging
from aurora.mqtt import MqttSettings
from aurora.ports import open_bus
from aurora.rpc_client import MqttBus
from aurora.sim.cli import demo_registers

from tests.support import Broker, Collector
from tests.support.bridge import DEMO_ID as DEVICE
from tests.support.bridge import Bridge
from tests.support.sim import Sim

BASE = f"homie/{DEVICE}/$modbus"
SIM_ARGS = ["--no-drift", "--turnaround-ms", "1"]
QUIET = ["--fast-interval", "3600", "--medium-interval", "3600", "--slow-interval", "3600"]
POLLING = ["--fast-interval", "1", "--medium-interval", "5", "--slow-interval", "30"]
READ = [(745, 3)]  # one FC 65 transaction of 3 registers: ~11 ms on the wire
GOAL_ADDED_MEDIAN_MS = 3.0
DISTINCT = sorted(demo_registers())[200:240:2]  # 20 registers of the demo unit, one per client


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(statistics.quantiles(ordered, n=100)[98] * 1000, 3),
        "n": len(ordered),
    }


def _timed(call: Callable[[], object], samples: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def settings_for(broker: Broker, user: str) -> MqttSettings:
    return MqttSettings.from_url(
        broker.url(user, BASE), password_file=str(broker.password_file(user)), ca_file=str(broker.ca_file)
    )


def single_client(direct: Bus, through: MqttBus, samples: int) -> dict[str, Any]:
    # Alternating the two paths spreads any slow spell of the machine over both alike.
    d: list[float] = []
    m: list[float] = []
    for _ in range(samples // 10):
        d += _timed(lambda: direct.read_ranges(READ), 10, warmup=1)
        m += _timed(lambda: through.read_ranges(READ), 10, warmup=1)
    ping = _timed(through.ping, samples)
    direct_ms, mqtt_ms = _ms(d), _ms(m)
    return {
        "request": "read_ranges [(745, 3)] (FC 65, 3 registers)",
        "direct_tcp": direct_ms,
        "mqtt_tls_qos1": mqtt_ms,
        "added_ms": {
            "median": round(mqtt_ms["median_ms"] - direct_ms["median_ms"], 3),
            "p99": round(mqtt_ms["p99_ms"] - direct_ms["p99_ms"], 3),
        },
        "mqtt_round_trip_without_bus": _ms(ping),
    }


def load(broker: Broker, clients: int, rounds: int, distinct: bool) -> dict[str, Any]:
    """``clients`` MqttBus clients, each ``rounds`` queries back to back, all at once."""
    buses = [MqttBus.connect(settings_for(broker, "fetch" if n % 2 else "web")) for n in range(clients)]
    latencies: list[float] = []
    transactions = 0
    errors: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(clients)

    def run(n: int, bus: MqttBus) -> None:
        nonlocal transactions
        text = str(DISTINCT[n]) if distinct else "745-747"
        mine, used = [], 0
        go.wait(30)
        for _ in range(rounds):
            t0 = time.perf_counter()
            try:
                answer = bus.query(text)
            except Exception as err:  # counted, not fatal: the numbers say how many failed
                with lock:
                    errors.append(repr(err))
                continue
            mine.append(time.perf_counter() - t0)
            used += answer.transactions
        with lock:
            latencies.extend(mine)
            transactions += used

    threads = [threading.Thread(target=run, args=(n, bus)) for n, bus in enumerate(buses)]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    for bus in buses:
        bus.close()
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "wall_s": round(wall, 3),
        "latency": _ms(latencies),
        "bus_transactions_per_request": round(transactions / max(1, len(latencies)), 3),
    }


def bridge_health(broker: Broker) -> dict[str, Any]:
    """The bridge's retained $health document, as a tool sees it."""
    watch = Collector(broker.client("fetch"), f"homie/{DEVICE}/$health")
    data: dict[str, Any] = json.loads(watch.wait_for(f"homie/{DEVICE}/$health", 10).payload)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args(argv)
    configure_logging(stream=sys.stderr)  # stdout carries only the JSON (a retry's warning broke it)
    tmp = Path(tempfile.mkdtemp(prefix="bench-passthrough-"))
    try:
        with (
            Broker.start(tmp) as broker,
            Sim.start(tmp, *SIM_ARGS, "--tcp", "127.0.0.1:0") as direct_sim,
            Sim.start(tmp, *SIM_ARGS, "--tcp", "127.0.0.1:0") as bridged_sim,
        ):
            with Bridge.start(tmp, broker, bridged_sim.url, poll=QUIET, name="bridge-quiet"):
                direct = open_bus(direct_sim.url)
                through = MqttBus.connect(settings_for(broker, "fetch"))
                try:
                    single = single_client(direct, through, args.samples)
                finally:
                    through.close()
                    direct.close()
            with Bridge.start(tmp, broker, bridged_sim.url, poll=POLLING, name="bridge-polling"):
                identical = load(broker, args.clients, args.rounds, distinct=False)
                distinct = load(broker, args.clients, args.rounds, distinct=True)
                time.sleep(6)  # $health is republished every 5 s: take one written after the load
                worker = bridge_health(broker).get("worker", {})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        "single_client": single,
        "goal": {
            "added_median_ms_below": GOAL_ADDED_MEDIAN_MS,
            "met": single["added_ms"]["median"] < GOAL_ADDED_MEDIAN_MS,
        },
        "under_load_while_polling": {
            "note": "every client: query 745-747 (identical, reads in flight are shared) or its own "
            "register (distinct); the bridge polls its fast tier every second",
            "identical_reads": identical,
            "distinct_reads": distinct,
            # Poll transactions any write or request had to wait for: at most the one in flight.
            "most_poll_transactions_waited": worker.get("most_polls_waited"),
            "longest_queue_wait_s": worker.get("longest_wait_s"),
        },
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
