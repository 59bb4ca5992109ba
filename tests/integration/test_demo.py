"""`make demo` as the README promises: broker, sim, bridge and web come up and data flows."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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


def _children(pid: int) -> dict[int, str]:
    """The direct children of ``pid``: {pid: command line}."""
    found: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return found


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")  # unreaped
    except OSError:
        return True


@contextlib.contextmanager
def _running_demo(
    tmp_path: Path, *, sigint_ignored: bool = False
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path, dict[int, str]]]:
    """`make demo`'s script in a session of its own (as a terminal runs it), up to its summary:
    the process, its output file, its root and its children. ``sigint_ignored``: started with
    SIGINT ignored, as a background job of a script (or a test runner started so) hands it down."""
    root = Path(tempfile.mkdtemp(prefix="aurora-demo-"))
    root.chmod(0o711)
    out = tmp_path / "demo.out"
    script = [str(REPO / "scripts" / "demo.py"), "--root", str(root / "demo")]
    if sigint_ignored:  # the same process (exec), so its pid and children stay the demo's
        ignoring = (
            "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        script = ["-c", ignoring, sys.executable, *script]
    with out.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, *script],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: "Ctrl-C stops everything." in out.read_text() or demo.poll() is not None,
            150,
            "the demo's summary",
        )
        assert None is demo.poll(), out.read_text()
        children = _children(demo.pid)
        assert {"mosquitto", "aurora_sim", "aurora_mqtt_bridge", "web_aid_tool"} <= {
            Path(c.split()[1] if "python" in c.split()[0] else c.split()[0]).name for c in children.values()
        }, children
        yield demo, out, root / "demo", children
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
        shutil.rmtree(root, ignore_errors=True)


def test_a_process_that_dies_is_named_with_the_end_of_its_log_and_the_others_stop_cleanly(
    tmp_path: Path,
) -> None:
    """The sim killed under the running demo: the demo says which process, how it ended and the
    last lines of its log, stops the others (the bridge's clean stop: its broker still up) and
    exits 1, with no traceback and no process left behind."""
    with _running_demo(tmp_path) as (demo, out, root, children):
        sim = next(pid for pid, command in children.items() if "aurora_sim" in command)
        os.kill(sim, signal.SIGKILL)
        assert 1 == demo.wait(60)
        text = out.read_text()
        report = text.split("Ctrl-C stops everything.", 1)[1]
        assert f"demo: sim killed by SIGKILL; the end of {root / 'logs' / 'sim.log'}:" in report, text
        assert "  listening: tcp://127.0.0.1:" in report  # the sim's own output, from its log
        assert "Stopping the others; `make demo` starts everything again." in report
        assert "Traceback" not in text
        assert all(_gone(pid) for pid in children), {p: c for p, c in children.items() if not _gone(p)}
        bridge_log = (root / "logs" / "bridge.log").read_text()
        assert '"event": "bridge_stopped"' in bridge_log.splitlines()[-1], bridge_log[-2000:]


def test_ctrl_c_stops_every_process_in_order_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's foreground group) reaches only the demo, which stops the
    web tool, the bridge (publishing `disconnected` while the broker is up), the sim and the broker;
    even when the demo was started with SIGINT ignored (it then went on running: a test runner
    started in the background failed this test)."""
    with _running_demo(tmp_path, sigint_ignored=True) as (demo, out, root, children):
        os.killpg(demo.pid, signal.SIGINT)
        assert 0 == demo.wait(60)
        text = out.read_text()
        assert "Traceback" not in text and "demo:" not in text, text
        assert all(_gone(pid) for pid in children)
        bridge_log = (root / "logs" / "bridge.log").read_text().splitlines()
        assert '"event": "bridge_stopped"' in bridge_log[-1]
        assert not [line for line in bridge_log if '"level": "error"' in line or '"level": "warning"' in line]
