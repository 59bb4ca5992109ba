"""Boards without the WaterFurnace function codes (the original's issues 123 and 124, peers.md B2).

Commercial 17X553 ABC boards answer FC 65/66 with IllegalFunction, others stay silent. Function 3
still works there, so every tool reads with standard FC 3 blocks of at most 100 registers after the
first refused or unanswered 65/66, and produces every value a 7 Series board gives.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from aurora.query import parse_query

from tests.support import Broker, Collector, wait_for
from tests.support.bridge import BIN, DEMO_ID, Bridge
from tests.support.broker import live_values
from tests.support.data import JFCLICHE_FLAT
from tests.support.ser2net import Ser2net
from tests.support.sim import Sim

pytestmark = pytest.mark.integration
FLAT = JFCLICHE_FLAT  # a real unit's full scan
QUIRKS = {"refused": "--refuse-wf-codes", "silent": "--silent-wf-codes"}


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "aurora_fetch"), *args], capture_output=True, text=True, timeout=90)


def valid_part_of_the_scan() -> dict[int, int]:
    scan = yaml.safe_load(FLAT.read_text())
    valid = set(parse_query("valid").addresses)
    return {a: v for a, v in scan.items() if a in valid}


@pytest.mark.parametrize("quirk", ["refused", "silent"])
def test_fetch_valid_from_a_board_without_fc65_gives_the_whole_scan(tmp_path: Path, quirk: str) -> None:
    """`aurora_fetch PORT valid --yaml`, the dump every bug report asks for, works on such a board."""
    with Sim.start(tmp_path, str(FLAT), "--tcp", "127.0.0.1:0", "--baud", "0", QUIRKS[quirk]) as sim:
        done = fetch(sim.url, "valid", "--yaml", "--timeout", "0.3")
    assert 0 == done.returncode, done.stderr[-2000:]
    assert valid_part_of_the_scan() == yaml.safe_load(done.stdout)
    assert 1 == done.stderr.count('"wf_codes_unsupported"'), "the board is probed once, not per request"


def test_fetch_through_ser2net_rfc2217_from_a_refusing_board_prints_named_values(tmp_path: Path) -> None:
    """The field case of issue 124: a commercial board behind ser2net on a Pi."""
    query = "2,88-91,340,401,741,745-747,1110-1111"  # the registers issue 124 saw time out
    with Sim.start(tmp_path, str(FLAT), "--no-drift") as plain:
        expected = fetch(plain.url, query)
    assert 0 == expected.returncode, expected.stderr
    with (
        Sim.start(tmp_path, str(FLAT), "--no-drift", "--refuse-wf-codes") as sim,
        Ser2net.start(tmp_path, sim.url) as s2n,
    ):
        done = fetch(s2n.rfc2217_url, query)
    assert 0 == done.returncode, done.stderr
    assert expected.stdout == done.stdout
    assert "ABC Program (88): ABCSTD" in done.stdout.splitlines()


# ---------------------------------------------------------------- the bridge


def live(watch: Collector) -> dict[str, str]:
    """The last value published live on each property topic (accumulating nodes left out)."""
    return dict(live_values(watch))


def ready(watch: Collector) -> bool:
    state = f"homie/{DEMO_ID}/$state"
    return any(m.topic == state and m.payload == b"ready" and not m.retain for m in watch.messages)


@pytest.fixture
def values_of_a_7_series_board(tmp_path: Path, broker: Broker) -> dict[str, str]:
    """Every property the bridge publishes for the demo unit on a board that answers FC 65/66
    (that bridge is stopped again: two bridges of one device would take turns on the broker)."""
    run = tmp_path / "plain"
    run.mkdir()
    watch = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/#")
    with (
        Sim.start(run, "--tcp", "127.0.0.1:0", "--no-drift") as sim,
        Bridge.start(run, broker, sim.url, ready_deadline_s=None),
    ):
        wait_for(lambda: ready(watch), 30, "the bridge ready on a 7 Series board")
        watch.barrier(f"homie/{DEMO_ID}/$state")
    return live(watch)


@pytest.mark.parametrize("quirk", ["refused", "silent"])
def test_the_bridge_publishes_every_value_from_a_board_without_fc65(
    tmp_path: Path, broker: Broker, values_of_a_7_series_board: dict[str, str], quirk: str
) -> None:
    """Same topics, same values as on a 7 Series board; the fallback shows in the log and $health."""
    expected = values_of_a_7_series_board
    assert len(expected) > 50, "the plain run published too little to compare"
    run = tmp_path / quirk
    run.mkdir()
    watch = Collector(broker.client("homeassistant"), f"homie/{DEMO_ID}/#")
    with (
        Sim.start(run, "--tcp", "127.0.0.1:0", "--no-drift", QUIRKS[quirk]) as sim,
        Bridge.start(run, broker, sim.url, ready_deadline_s=None) as bridge,
    ):
        wait_for(lambda: ready(watch), 30, f"the bridge ready on a board whose FC 65/66 are {quirk}")
        wait_for(lambda: expected.keys() <= live(watch).keys(), 15, "every property published")
        watch.barrier(f"homie/{DEMO_ID}/$state")
        assert bridge.process.poll() is None
    got = live(watch)
    assert {t: expected[t] for t in sorted(expected)} == {t: got[t] for t in sorted(expected)}
    log = (run / "bridge.log").read_text()
    assert "wf_codes_unsupported" in log
    health = json.loads(watch.received(f"homie/{DEMO_ID}/$health")[-1].payload)
    assert "ready" == health["state"]
