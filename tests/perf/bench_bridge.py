"""Benchmark of the bridge: poll-cycle bus time against the wire-time minimum, start to ``ready``,
and idle CPU and RSS at the default intervals. Prints one JSON document.

    .venv/bin/python -m tests.perf.bench_bridge [--idle-s 60] [--cycles 5]

Everything runs as in the integration tests: ``aurora_sim`` at 19200 baud on a TCP port, the
project's mosquitto with TLS and passwords, the bridge as a process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from aurora import rtu
from aurora.bridge import device
from aurora.bridge.poller import read_words
from aurora.bridge.worker import BusWorker
from aurora.logs import configure_logging
from aurora.ports import open_bus
from aurora.query import MAX_PAIRS, plan_chunks

from tests.support import Broker, wait_for
from tests.support.bridge import Bridge
from tests.support.sim import Sim

CLK_TCK = os.sysconf("SC_CLK_TCK")
TURNAROUND_S = 0.002  # the sim's default board turnaround (the bridge's sim runs with it)
SET_ROUNDS = 15


def _wire_s(items: Sequence[tuple[int, int]]) -> float:
    """Line time of one read's request and reply at 19200 8E1 (11 bits a byte): its minimum, in
    the shorter of the two requests, as the bridge sends it (worker.merged_read: FC 65 ranges at 4
    bytes an item, or FC 66 addresses at 2 a register)."""
    count = sum(n for _, n in items)
    uses_ranges = any(n > 1 for _, n in items) and len(items) <= MAX_PAIRS and 2 * len(items) < count
    addresses = [a for s, n in items for a in range(s, s + n)]
    request = rtu.read_ranges(items) if uses_ranges else rtu.read_registers(addresses)
    return (len(request.encode()) + request.expected_reply_length()) * rtu.BYTE_TIME_S


def poll_cycle(url: str, cycles: int) -> dict[str, object]:
    """Read every tier of the detected demo unit ``cycles`` times through the bridge's own worker."""
    worker = BusWorker(lambda: open_bus(url))
    worker.start()
    try:
        stop = threading.Event()

        detected: set[int] = set()
        detection_wire = [0.0]

        def read(ranges: Sequence[tuple[int, int]]) -> Mapping[int, int]:
            addresses = [a for s, n in ranges for a in range(s, s + n)]
            detected.update(addresses)
            detection_wire[0] += sum(_wire_s(c.items) + TURNAROUND_S for c in plan_chunks(addresses))
            return read_words(worker, addresses, stop=stop).words

        unit = device.detect(read)
        tiers = {t.name.lower(): unit.registers(t) for t in device.Tier}
        everything = frozenset().union(*tiers.values())
        chunks = plan_chunks(everything)
        wire_min = sum(_wire_s(c.items) for c in chunks)
        # What the line needs before $state ready: detection, then the registers it did not read.
        rest = plan_chunks(everything - detected)
        start_line_s = detection_wire[0] + sum(_wire_s(c.items) + TURNAROUND_S for c in rest)
        times = []
        for _ in range(cycles):
            before = worker.stats.bus_time_s
            started = time.monotonic()
            report = read_words(worker, everything, stop=stop)
            elapsed = time.monotonic() - started
            assert report.complete, report.failed
            times.append((elapsed, worker.stats.bus_time_s - before))
        fast_chunks = plan_chunks(tiers["fast"])
        return {
            "registers": {name: len(regs) for name, regs in tiers.items()} | {"all": len(everything)},
            "transactions_per_full_cycle": len(chunks),
            "transactions_fast_tier": len(fast_chunks),
            "wire_time_min_s": round(wire_min, 4),
            "fast_tier_wire_time_min_s": round(sum(_wire_s(c.items) for c in fast_chunks), 4),
            "bus_time_s_median": round(statistics.median(b for _, b in times), 4),
            "wall_time_s_median": round(statistics.median(e for e, _ in times), 4),
            "bus_over_wire": round(statistics.median(b for _, b in times) / wire_min, 2),
            "start_line_minimum_s": round(start_line_s, 3),
            "first_poll_transactions": len(rest),
            "cycles": cycles,
        }
    finally:
        worker.stop()


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _ready_steps(log: Path) -> dict[str, float]:
    """The ``steps_s`` of the bridge's ``bridge_ready`` log line (JSON logs)."""
    for line in log.read_text().splitlines():
        if '"bridge_ready"' in line:
            steps: dict[str, float] = json.loads(line).get("steps_s", {})
            return steps
    return {}


def _installed_env(tmp: Path) -> dict[str, str]:
    """The bridge with its byte code compiled, as an installed package has it (pip compiles it at
    install; the image's PYTHONDONTWRITEBYTECODE only stops writing more): without this, under
    PYTHONDONTWRITEBYTECODE=1, every start would compile every module (~90 ms on this machine).

    The byte code goes to a PYTHONPYCACHEPREFIX of this run, written by one start of the bridge
    to ready (against a broker of its own: the measured start meets a fresh one); with a prefix,
    Python looks for the byte code of the standard library and of paho there too, so a warm-up
    run is what compiles all of it. An empty value unsets the variable for the child (Python
    reads only a non-empty one)."""
    env = {"PYTHONDONTWRITEBYTECODE": "", "PYTHONPYCACHEPREFIX": str(tmp / "pycache")}
    warm = tmp / "warm-up"
    warm.mkdir()
    with (
        Broker.start(warm) as broker,
        Sim.start(warm, "--tcp", "127.0.0.1:0") as sim,
        Bridge.start(warm, broker, sim.url, poll=(), env=env),
    ):
        pass  # started returns once $state is ready
    return env


def bridge_run(tmp: Path, idle_s: float) -> dict[str, object]:
    """Start broker, sim and bridge at the default intervals; time start→ready; idle CPU and RSS."""
    env = _installed_env(tmp)
    with (
        Broker.start(tmp) as broker,
        Sim.start(tmp, "--tcp", "127.0.0.1:0") as sim,
    ):
        watcher = broker.client("homeassistant")
        ready = threading.Event()
        ready_at: list[float] = []  # when the subscriber got it (the wait below polls)
        state_topic = "homie/aurora-2611000042/$state"

        setpoint = "homie/aurora-2611000042/dhw/set-point"
        arrived: dict[str, float] = {}
        changed = threading.Condition()

        def on_value(msg: mqtt.MQTTMessage) -> None:
            with changed:
                arrived[msg.payload.decode()] = time.monotonic()
                changed.notify_all()

        def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
            if msg.topic == state_topic and msg.payload == b"ready" and not msg.retain and not ready.is_set():
                ready_at.append(time.monotonic())
                ready.set()
            elif msg.topic == setpoint:
                on_value(msg)

        watcher.on_message = on_message
        watcher.subscribe([(state_topic, 1), (setpoint, 1)])
        started = time.monotonic()
        # The default intervals; the watcher above waits for ready, timing it.
        with Bridge.start(tmp, broker, sim.url, poll=(), ready_deadline_s=None, env=env) as bridge:
            process = bridge.process
            wait_for(ready.is_set, 60, "$state ready")
            to_ready = ready_at[0] - started
            # The bridge's own account of its start: each step's time since the process started.
            wait_for(lambda: "bridge_ready" in bridge.log.read_text(), 10, "the bridge_ready log line")
            steps = _ready_steps(bridge.log)
            # /set → write → read-back → published value, while the bridge polls every 5 s.
            set_s = []
            for i in range(SET_ROUNDS):
                target = f"{110 + i}.0"
                sent = time.monotonic()
                watcher.publish(f"{setpoint}/set", target.removesuffix(".0"), qos=1)
                with changed:
                    if not changed.wait_for(lambda t=target: t in arrived, 10):
                        raise TimeoutError(f"no read-back of {target}")
                set_s.append(arrived[target] - sent)
                time.sleep(0.37)  # land the next write at another point of the poll cycle
            # Let the start-up settle (first medium/slow reads, imports done) before measuring idle.
            time.sleep(2)
            cpu0, t0 = _cpu_s(process.pid), time.monotonic()
            rss = []
            while time.monotonic() - t0 < idle_s:
                rss.append(_rss_mb(process.pid))
                time.sleep(1)
            cpu1, t1 = _cpu_s(process.pid), time.monotonic()
            alive = process.poll() is None
        # A restart, as after an upgrade or a reboot: the broker holds the tree and discovery of
        # the run above, which the new run scans and takes over (publisher.scan_retained).
        ready.clear()
        started = time.monotonic()
        with Bridge.start(
            tmp, broker, sim.url, poll=(), ready_deadline_s=None, env=env, name="restart"
        ) as again:
            wait_for(ready.is_set, 60, "$state ready after the restart")
            restart_to_ready = ready_at[-1] - started
            wait_for(lambda: "bridge_ready" in again.log.read_text(), 10, "the restart's bridge_ready line")
            restart_steps = _ready_steps(again.log)
        return {
            "start_to_ready_s": round(to_ready, 2),
            "restart_to_ready_s": round(restart_to_ready, 2),
            "restart_steps_s": restart_steps,
            "start_steps_s": steps,
            "set_to_readback_s_median": round(statistics.median(set_s), 4),
            "set_to_readback_s_max": round(max(set_s), 4),
            "idle_s": round(t1 - t0, 1),
            "idle_cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 3),
            "rss_mb_max": round(max(rss), 1),
            "rss_mb_last": round(rss[-1], 1),
            "alive": alive,
        }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print JSON on stdout."""
    parser = argparse.ArgumentParser(prog="bench_bridge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle-s", type=float, default=60.0, help="idle measurement window (default 60)")
    parser.add_argument("--cycles", type=int, default=5, help="full poll cycles to time (default 5)")
    args = parser.parse_args(argv)
    configure_logging(fmt="console")  # stderr: stdout carries only the JSON
    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as name:
        tmp = Path(name)
        with Sim.start(tmp, "--tcp", "127.0.0.1:0", "--no-drift") as sim:
            poll = poll_cycle(sim.url, args.cycles)
        run = bridge_run(tmp, args.idle_s)
    result = {
        "benchmark": "bridge",
        "line": "aurora_sim over TCP at 19200 8E1 (paced like the wire)",
        "default_intervals_s": {"fast": 5, "medium": 30, "slow": 300},
        "poll_cycle": poll,
        "process": run,
        "goals": {"rss_mb_max": 40, "idle_cpu_percent_of_one_core": 1.0},
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
