"""aurora_monitor listening to a live bus while a client talks to the sim on it.

Two parties share the line the way an RS-485 pair is shared: the sim repeats every byte it hears
and sends (requests and replies, in order) to a tap pty (``aurora_sim --tap-pty LINK``), and the
monitor opens that pty like a second adapter on the same wires. It never transmits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import running, wait_for
from tests.support.sim import Sim

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
UNIT = "---\n2: 306\n340: 3\n745: 680\n746: 730\n747: 712\n1110: 455\n1111: 502\n1146: 0\n1147: 2100\n"


def fetch(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "aurora_fetch"), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def unit_dump(tmp_path: Path) -> Path:
    path = tmp_path / "unit.yml"
    path.write_text(UNIT, encoding="utf-8")
    return path


def test_the_monitor_prints_what_a_client_reads_from_the_sim(tmp_path: Path, unit_dump: Path) -> None:
    """A user watches the AID tool's traffic: each read shows up by name while it happens."""
    tap = tmp_path / "ttyTAP"
    log = tmp_path / "monitor.log"
    recording = tmp_path / "bus.bin"
    with Sim.start(tmp_path, str(unit_dump), "--no-drift", "--tap-pty", str(tap)) as sim:
        argv = [str(BIN / "aurora_monitor"), str(tap), "--record", str(recording)]
        with running(argv, log=log, env={"AURORA_LOG_FORMAT": "json"}) as monitor:
            wait_for(lambda: "monitor_listening" in log.read_text(), 10, "monitor listening")
            done = fetch(sim.url, "745-747,1146-1147")
            assert 0 == done.returncode, done.stderr
            wait_for(lambda: "Compressor Watts (1146): 2100W" in log.read_text(), 10, "the read in the log")
            assert monitor.poll() is None  # still listening
    lines = log.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if "===== read multiple register ranges from 1" in line)
    assert [
        "Heating Set Point (745): 68.0°F",
        "Cooling Set Point (746): 73.0°F",
        "Ambient Temperature (747): 71.2°F",
        "Compressor Watts (1146): 2100W",
    ] == lines[header + 1 : header + 5]
    assert not [line for line in lines if "no reply" in line or "Traceback" in line]
    # What the monitor heard, replayed later, tells the same story.
    replay = subprocess.run(
        [str(BIN / "aurora_monitor"), str(recording)], capture_output=True, text=True, timeout=30
    )
    assert 0 == replay.returncode, replay.stderr
    assert "Compressor Watts (1146): 2100W" in replay.stdout.splitlines()


def test_the_monitor_shows_a_board_refusing_the_waterfurnace_codes_and_the_fallback(
    tmp_path: Path, unit_dump: Path
) -> None:
    """On a commercial board the monitor shows the FC 65 refusal, then the client's FC 3 reads."""
    tap = tmp_path / "ttyTAP"
    log = tmp_path / "monitor.log"
    sim_args = ("--no-drift", "--refuse-wf-codes", "--tap-pty", str(tap))
    monitor = [str(BIN / "aurora_monitor"), str(tap)]
    with (
        Sim.start(tmp_path, str(unit_dump), *sim_args) as sim,
        running(monitor, log=log, env={"AURORA_LOG_FORMAT": "json"}),
    ):
        wait_for(lambda: "monitor_listening" in log.read_text(), 10, "monitor listening")
        done = fetch(sim.url, "745-747")
        assert 0 == done.returncode, done.stderr
        wait_for(lambda: "===== read registers from 1" in log.read_text(), 10, "an FC 3 read")
    text = log.read_text()
    refusal = "read multiple register ranges 745-747 refused by 1: illegal function (function 65, code 1)"
    assert refusal in text
    assert "Heating Set Point (745): 68.0°F" in text.splitlines()


def test_the_monitor_ends_cleanly_when_its_tcp_peer_goes_away(tmp_path: Path, unit_dump: Path) -> None:
    """The original spun at 100 % CPU after the peer closed (docs/protocol.md#bugs-server): here one line and
    exit 1."""
    log = tmp_path / "monitor.log"
    with Sim.start(tmp_path, str(unit_dump), "--tcp", "127.0.0.1:0") as sim:
        monitor = running([str(BIN / "aurora_monitor"), sim.url], log=log, env={"AURORA_LOG_FORMAT": "json"})
        with monitor as process:
            wait_for(lambda: "monitor_listening" in log.read_text(), 10, "monitor listening")
            sim.stop()  # the server closes the connection
            wait_for(lambda: process.poll() is not None, 10, "the monitor to exit")
    assert 1 == process.returncode
    assert f"aurora_monitor: {sim.url}: connection closed by the server" in log.read_text()
