"""The bridge's start-up order (issue 15: start to ready): the line is opened and detection started
before the MQTT stack and the rest of the bridge are imported, so that the imports overlap the
detection's reads instead of coming before them. The timings are in the bench
(tests/perf/bench_bridge.py, ``process.start_steps_s``)."""

from __future__ import annotations

import json
import subprocess
import sys

# Each of these takes longer to import than the first detection request takes on the line; none
# is needed before it goes out.
NOT_BEFORE_DETECTION = (
    "paho",
    "structlog",
    "asyncio",
    "tenacity",
    "ssl",
    "importlib.metadata",
    "homie_spec",
    "aurora.mqtt",
    "aurora.bridge.app",
    "aurora.bridge.hass",
    "aurora.bridge.homie",
    "aurora.bridge.publisher",
    "aurora.bridge.properties",  # the node modules: the main thread imports them during the read
    "aurora.bridge.energy",
    "tempfile",
    # The records of the early path are aurora.records ones: dataclasses pulls inspect, ast, dis
    # and tokenize (~10 ms), and generating the classes' code as much again.
    "dataclasses",
    "inspect",
    "aurora.bridge.health",  # datetime and json for $health, needed once the tree is out
    "datetime",
    "shutil",  # argparse's help width (with zlib, bz2, lzma): cli.py finds it without
)

# Runs the bridge's main in a fresh interpreter and reports the modules imported when it starts
# the detection (and stops it there).
PROBE = """
import json, sys
import aurora.bridge.early as early
seen = {}
def start(port, **options):
    seen["modules"] = sorted(sys.modules)
    seen["options"] = {k: v for k, v in options.items() if k != "stop"}
    raise SystemExit(0)
early.start = start
from aurora.bridge.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(seen))
"""


def test_detection_starts_before_the_mqtt_stack_and_the_node_modules_are_imported() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            "tcp://127.0.0.1:9/",
            "mqtts://bridge@127.0.0.1:1/",
            "--timeout",
            "0.7",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    imported = [
        m for m in seen["modules"] if any(m == n or m.startswith(n + ".") for n in NOT_BEFORE_DETECTION)
    ]
    assert [] == imported
    assert {"latency_s": 0.7, "debug": False, "device_name": "WaterFurnace"} == seen["options"]


def test_the_threads_on_the_line_get_the_interpreter_lock_sooner_until_the_start_is_settled() -> None:
    """Until ready, a reply's hand-offs (bus worker, detection) wait at most 0.5 ms for the main
    thread's imports, not CPython's 5 ms; afterwards the interpreter's own interval is back."""
    import threading

    from aurora.bridge.early import START_SWITCH_INTERVAL_S, EarlyStart
    from aurora.dump import DumpBus
    from aurora.sim.cli import demo_registers

    before = sys.getswitchinterval()
    stop = threading.Event()
    started = EarlyStart(lambda: DumpBus(demo_registers()), device_name="Basement", stop=stop)
    try:
        assert START_SWITCH_INTERVAL_S == sys.getswitchinterval() < before
        unit = started.attempt.result(timeout=30)
        assert "aurora-2611000042" == unit.device_id
        assert "2611000042" == started.serial.result(timeout=1)
        assert sys.getswitchinterval() == START_SWITCH_INTERVAL_S  # ready is later than detection
        started.settle()
        assert before == sys.getswitchinterval()
        started.settle()  # once only: a second call changes nothing
        assert before == sys.getswitchinterval()
    finally:
        stop.set()
        started.settle()
        started.worker.stop()
