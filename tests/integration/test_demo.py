"""`make demo` as the README promises: broker, sim, bridge and web come up and data flows."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import wait_for

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_the_demo_starts_the_whole_suite_and_fetches_through_the_broker() -> None:
    """scripts/demo.py --check: the same start-up as `make demo`, then it proves a fetch and stops."""
    root = Path(tempfile.mkdtemp(prefix="aurora-demo-"))
    root.chmod(0o711)  # mosquitto, after dropping root, must pass through to its files
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "demo.py"), "--check", "--root", str(root / "demo")],
            capture_output=True,
            text=True,
            timeout=180,
        )
        logs = "\n".join(p.read_text(errors="replace") for p in (root / "demo" / "logs").glob("*.log"))
        assert 0 == done.returncode, done.stdout + done.stderr + logs
        assert "Heating Set Point (745): 68.0°F" in done.stdout
        assert "web UI      http://127.0.0.1:" in done.stdout
        secret_values = {p.read_text().strip() for p in (root / "demo" / "etc").rglob("password")}
        assert secret_values and not any(v in done.stdout + logs for v in secret_values)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _printed_command(text: str, start: str) -> str:
    """The command on the line starting with ``start`` and its backslash continuations, as a shell
    reads it (the continuation lines are indented for the eye)."""
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.lstrip().startswith(start))
    command = [lines[index].lstrip()[len(start) :].strip()]
    while command[-1].endswith("\\"):
        command[-1] = command[-1][:-1].rstrip()
        index += 1
        command.append(lines[index].strip())
    return " ".join(command)


def test_the_printed_commands_work_pasted_into_a_shell_anywhere(tmp_path: Path) -> None:
    """`make demo` prints commands to copy: run from another directory by a shell they work
    ($modbus quoted, absolute paths), and the sim's write log it names shows a write."""
    root = Path(tempfile.mkdtemp(prefix="aurora-demo-"))
    root.chmod(0o711)
    out = tmp_path / "demo.out"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with out.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "demo.py"), "--root", str(root / "demo")],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for(
            lambda: "Ctrl-C stops everything." in out.read_text() or demo.poll() is not None,
            150,
            "the demo's summary",
        )
        text = out.read_text()
        assert None is demo.poll(), text

        def shell(command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
            clean = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "AURORA_"))}
            clean["PATH"] = "/usr/bin:/bin:/usr/sbin:/sbin"  # no venv: the printed paths must do
            return subprocess.run(
                ["bash", "-c", command],
                cwd=elsewhere,
                env=clean,
                capture_output=True,
                text=True,
                timeout=timeout,
            )

        first = shell(_printed_command(text, "$ "))
        assert 0 == first.returncode, first.stderr
        assert "Heating Set Point (745): 68.0°F" in first.stdout.splitlines()
        full = shell(_printed_command(text, "fetch "))
        assert 0 == full.returncode, full.stderr[-2000:]
        assert len(full.stdout.splitlines()) > 300  # `valid` of the demo unit
        watched = shell(_printed_command(text, "watch it ") + " -C 1 -W 30")
        assert 0 == watched.returncode, watched.stderr
        assert watched.stdout.startswith("homie/aurora-2611000042/")
        log = Path(_printed_command(text, "tail -f "))
        assert log.is_file() and "" == log.read_text()
        etc = root / "demo" / "etc"
        port = re.search(r"broker      mqtts://127.0.0.1:(\d+)/", text)
        assert port is not None
        published = shell(
            f"mosquitto_pub --cafile {etc / 'ca' / 'ca.crt'} -h 127.0.0.1 -p {port[1]} -u web "
            f'-P "$(cat {etc / "web" / "password"})" -q 1 '
            "-t homie/aurora-2611000042/zone1/heating-target-temperature/set -m 71"
        )
        assert 0 == published.returncode, published.stderr
        wait_for(lambda: log.read_text().strip(), 30, "a write in the sim's write log")
        first_write = log.read_text().splitlines()[0]
        assert re.fullmatch(r"\d+ \d+", first_write), first_write  # ADDRESS VALUE
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(30)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        shutil.rmtree(root, ignore_errors=True)


def test_a_second_demo_on_the_same_directory_refuses_and_touches_nothing(tmp_path: Path) -> None:
    """While a demo holds .demo/lock, `make demo` again says so in one line and leaves its files."""
    import fcntl

    root = tmp_path / "demo"
    root.mkdir()
    with (root / "lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        done = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "demo.py"), "--check", "--root", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"make demo: another demo is running in {root} (pid 4242); stop it first\n"
    assert sorted(p.name for p in root.iterdir()) == ["lock"]
