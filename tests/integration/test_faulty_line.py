"""A line that misbehaves: replies dropped, corrupted, cut short, preceded by stray bytes.

Half of the original's issues are timeouts and flaky buses (peers.md B2.1). The sim injects the
faults (seeded, so a run repeats); retries, stale-byte flushing and timeouts must keep every value
right, and the error rates must show in the bridge's ``$health``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import Broker, Collector, wait_for
from tests.support.bridge import BIN, DEMO_ID, Bridge
from tests.support.broker import live_values
from tests.support.data import JFCLICHE_FLAT
from tests.support.sim import Sim

pytestmark = pytest.mark.integration
FLAT = JFCLICHE_FLAT  # a real unit's full scan
FAST = ["--fast-interval", "1", "--medium-interval", "2", "--slow-interval", "4"]
TIMEOUT = ["--timeout", "0.2"]  # the bridge's reply timeout on the faulty line
# Registers the real unit has without gaps: 12 requests of up to 100 registers at 19200 baud.
PRESENT = "0-155,300-301,310-314,320-326,330-333,340-348,400-419,440-516,550-579,600-749,800-913,1090-1165"
FAULTS = ["--drop", "0.1", "--corrupt", "0.05", "--partial", "0.05", "--stray", "0.05"]


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "aurora_fetch"), *args], capture_output=True, text=True, timeout=90)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fetch_over_a_faulty_line_returns_exactly_the_units_words(tmp_path: Path, seed: int) -> None:
    """10 % dropped, 5 % corrupted, 5 % cut short, 5 % with stray bytes: the dump is still exact."""
    with Sim.start(tmp_path, str(FLAT), "--no-drift", *FAULTS, "--seed", str(seed)) as sim:
        done = fetch(sim.url, PRESENT, "--yaml", "--timeout", "0.2")
        sim.stop()
        faults = sim.output()
    assert 0 == done.returncode, done.stderr[-3000:]
    scan = yaml.safe_load(FLAT.read_text())
    got = yaml.safe_load(done.stdout)
    assert {a: scan[a] for a in got} == got
    assert 650 == len(got)  # every register of PRESENT
    assert '"sim_faults"' in faults, "the sim injected nothing: the test proves nothing"
    assert '"bus_retry"' in done.stderr


# ---------------------------------------------------------------- the bridge's long poll run


def health(watch: Collector) -> dict[str, object] | None:
    got = [m for m in list(watch.messages) if m.topic == f"homie/{DEMO_ID}/$health" and not m.retain]
    return json.loads(got[-1].payload) if got else None


@pytest.fixture
def clean_values(tmp_path: Path, broker: Broker) -> dict[str, str]:
    """What the bridge publishes for the demo unit over a clean line (that bridge stopped again)."""
    run = tmp_path / "clean"
    run.mkdir()
    watch = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/#")
    with (
        Sim.start(run, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(run, broker, sim.url, *TIMEOUT, poll=FAST, ready_deadline_s=None),
    ):
        wait_for(lambda: (health(watch) or {}).get("state") == "ready", 30, "the clean bridge ready")
        watch.barrier(f"homie/{DEMO_ID}/$state")
    return dict(live_values(watch))


def test_a_long_poll_run_over_a_faulty_line_publishes_only_right_values_and_counts_the_errors(
    tmp_path: Path, broker: Broker, clean_values: dict[str, str]
) -> None:
    """10 % of replies dropped and 5 % corrupted for dozens of poll cycles: not one wrong value, no
    crash, and $health shows the timeouts, frame errors and retries that kept it so."""
    assert len(clean_values) > 50
    run = tmp_path / "faulty"
    run.mkdir()
    watch = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/#")
    faults = ["--drop", "0.1", "--corrupt", "0.05", "--seed", "11"]
    with (
        Sim.start(run, "--tcp", "127.0.0.1:0", "--no-drift", *faults) as sim,
        Bridge.start(run, broker, sim.url, *TIMEOUT, poll=FAST, ready_deadline_s=None) as bridge,
    ):

        def enough_cycles() -> bool:
            doc = health(watch) or {}
            poll = doc.get("poll")
            return isinstance(poll, dict) and int(poll.get("cycles", 0)) >= 20

        wait_for(enough_cycles, 60, "20 poll cycles over the faulty line")
        watch.barrier(f"homie/{DEMO_ID}/$state")
        assert bridge.process.poll() is None, "the bridge died"
    values = live_values(watch)
    wrong = [(topic, got, clean_values.get(topic)) for topic, got in values if got != clean_values.get(topic)]
    assert [] == wrong
    assert clean_values.keys() <= {topic for topic, _ in values}, "some values were never published"
    doc = health(watch)
    assert doc is not None
    bus = doc["bus"]
    assert isinstance(bus, dict)
    assert bus["timeouts"] > 0 and bus["frame_errors"] > 0 and bus["retries"] > 0, bus
    assert "ready" == doc["state"]
