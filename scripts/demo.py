"""``make demo``: the whole suite on the simulated heat pump, as local processes.

Broker (TLS, passwords, ACL) → sim → bridge → web proxy, then one fetch through the broker.
Everything lives in .demo/ (kept between runs, so passwords stay the same); logs in .demo/logs/.
Ctrl-C stops it all; so does the exit of any one process, which is named with the end of its
log. ``--check`` starts everything, proves data flows, and exits (used by tests).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import paho.mqtt.client as mqtt
from aurora.setup.layout import Layout
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEVICE = "aurora-2611000042"  # the demo unit's made-up serial number


def free_port(preferred: int) -> int:
    """``preferred`` when nobody listens there, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


LOG_TAIL_LINES = 12  # of a process that exited, shown with the reason


def exit_reason(returncode: int) -> str:
    """How a process ended, in words: ``killed by SIGKILL`` or ``exited with status 1``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES, width: int = 300) -> list[str]:
    """The last ``lines`` lines of a log, each cut to ``width`` characters."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    return [line[:width] + ("…" if len(line) > width else "") for line in text.splitlines()[-lines:]]


class Suite:
    """The processes of the demo; stopped together, the last started first.

    Each runs in a process group of its own, so a Ctrl-C reaches only the demo, which then stops
    them in order (the bridge says ``disconnected`` while the broker is still there).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[tuple[str, subprocess.Popen[str]]] = []

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, *, read_stdout: bool = False
    ) -> subprocess.Popen[str]:
        """Start ``argv`` with stderr (and stdout, unless ``read_stdout``) appended to its log."""
        self.log(name).write_text("")
        log = self.log(name).open("a")  # O_APPEND: the stdout drain below writes beside it
        process = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE if read_stdout else log,
            stderr=log,
            text=True,
            env={**os.environ, **(env or {})},
            process_group=0,
        )
        log.close()
        self.processes.append((name, process))
        return process

    def wait_line(
        self, name: str, process: subprocess.Popen[str], pattern: str, deadline_s: float = 30
    ) -> str:
        """Read the process's stdout until a line matches (the sim prints where it listens); the
        rest of its stdout goes on to its log, so a full pipe never blocks it."""
        assert process.stdout is not None
        result: list[str] = []
        found = threading.Event()

        def reader() -> None:
            with self.log(name).open("a") as log:
                for line in process.stdout:  # type: ignore[union-attr]
                    if not found.is_set() and re.search(pattern, line):
                        result.append(line.strip())
                        found.set()
                    log.write(line)
                    log.flush()

        threading.Thread(target=reader, name=f"{name}-stdout", daemon=True).start()
        if not found.wait(deadline_s):
            raise RuntimeError(self.died(name, process) or f"{name} did not start; see {self.log(name)}")
        return result[0]

    def died(self, name: str, process: subprocess.Popen[str]) -> str | None:
        """None while ``process`` runs; else which one it was, how it ended and its log's end."""
        if process.poll() is None:
            return None
        lines = [f"{name} {exit_reason(process.returncode)}; the end of {self.log(name)}:"]
        lines += [f"  {line}" for line in log_tail(self.log(name))] or ["  (empty)"]
        return "\n".join(lines)

    def first_dead(self) -> str | None:
        """The report of the first process that is no longer running, if any."""
        for name, process in self.processes:
            report = self.died(name, process)
            if report is not None:
                return report
        return None

    def stop(self) -> None:
        """Stop every process, the last started first, each before the next (SIGTERM, then
        SIGKILL after 10 s); a second Ctrl-C meanwhile does not interrupt it."""
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def setup_broker(suite: Suite, port: int) -> Path:
    """Run aurora_setup into .demo/etc and start mosquitto on 127.0.0.1:port."""
    etc = suite.root / "etc"
    data = suite.root / "data"
    for path in (suite.root, etc):
        path.mkdir(exist_ok=True)
        path.chmod(0o711)  # mosquitto (after dropping root) passes through, lists nothing
    data.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam("mosquitto")
        os.chown(data, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        [str(BIN / "aurora_setup"), "--dir", str(etc), "--broker-data", str(data) + "/",
         "--mosquitto-source", str(REPO / "mosquitto")],
        check=True, stdout=(suite.logs / "setup.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    conf_text = (etc / "mosquitto" / "mosquitto.conf").read_text()
    conf_text = re.sub(r"^listener\s+\d+\s*$", f"listener {port} 127.0.0.1", conf_text, flags=re.MULTILINE)
    conf = suite.root / "mosquitto.conf"
    conf.write_text(conf_text)
    mosquitto = suite.start("mosquitto", ["mosquitto", "-c", str(conf)])
    deadline = time.monotonic() + 15
    while " running" not in suite.log("mosquitto").read_text():
        dead = suite.died("mosquitto", mosquitto)
        if dead is not None:
            raise RuntimeError(dead)
        if time.monotonic() > deadline:
            raise RuntimeError(f"mosquitto did not start; see {suite.log('mosquitto')}")
        time.sleep(0.05)
    return etc


def wait_ready(suite: Suite, etc: Path, port: int, deadline_s: float = 60) -> None:
    """Wait for the bridge's retained $state=ready, as user fetch sees it; RuntimeError naming
    the process when one of the suite's exits meanwhile."""
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fetch-demo-{os.getpid()}")
    layout = Layout(etc)
    client.username_pw_set("fetch", layout.password("fetch").read_text().strip())
    client.tls_set_context(ssl.create_default_context(cafile=str(layout.ca_cert)))
    client.on_connect = lambda c, *_: c.subscribe(f"homie/{DEVICE}/$state", qos=1)

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        if m.payload == b"ready":
            ready.set()

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    deadline = time.monotonic() + deadline_s
    try:
        while not ready.wait(0.5):
            dead = suite.first_dead()
            if dead is not None:
                raise RuntimeError(dead)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bridge did not become ready; see {suite.log('bridge')}")
    finally:
        client.disconnect()
        client.loop_stop()


def hold_lock(root: Path) -> TextIO | None:
    """An exclusive lock on ``root/lock`` for as long as this process lives; None if another
    demo holds it (a second demo must never use, or overwrite, the first one's files)."""
    root.mkdir(parents=True, exist_ok=True)
    handle = (root / "lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def owner(root: Path) -> str:
    """The pid the running demo wrote into its lock file."""
    try:
        return (root / "lock").read_text().strip() or "?"
    except OSError:
        return "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="start, prove data flows, stop")
    parser.add_argument("--root", type=Path, default=REPO / ".demo")
    args = parser.parse_args()
    root = args.root.resolve()
    lock = hold_lock(root)
    if lock is None:
        message = f"make demo: another demo is running in {root} (pid {owner(root)}); stop it first"
        print(message, file=sys.stderr)
        return 1
    suite = Suite(root)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a service manager, a closed terminal
        signal.signal(signum, lambda *_: stop.set())
    # Ctrl-C stops the demo even where it was started with SIGINT ignored (Python then leaves it
    # ignored): a background job of a script, a test runner started that way. The services take
    # SIGINT the same way, whatever they inherit.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        mqtt_port = free_port(8883)
        web_port = free_port(4567)
        etc = setup_broker(suite, mqtt_port)
        layout = Layout(etc)
        secret = {user: str(layout.password(user)) for user in ("bridge", "fetch", "web")}
        ca = str(layout.ca_cert)
        writes = suite.logs / "sim-writes.log"
        writes.write_text("")  # there from the start, for `tail -f`
        sim = suite.start(
            "sim",
            [str(BIN / "aurora_sim"), "--tcp", "127.0.0.1:0", "--write-log", str(writes)],
            read_stdout=True,
        )
        sim_url = suite.wait_line("sim", sim, r"listening: tcp://").split()[-1]
        broker = f"mqtts://{{user}}@127.0.0.1:{mqtt_port}/"
        suite.start(
            "bridge",
            [str(BIN / "aurora_mqtt_bridge"), sim_url, broker.format(user="bridge")],
            {"AURORA_MQTT_PASSWORD_FILE": secret["bridge"], "AURORA_MQTT_CA_FILE": ca,
             "AURORA_BRIDGE_ENERGY_STATE": str(args.root.resolve() / "energy-{device}.json")},
        )  # fmt: skip
        wait_ready(suite, etc, mqtt_port)
        web_target = broker.format(user="web") + f"homie/{DEVICE}/$modbus"
        web = suite.start(
            "web",
            [str(BIN / "web_aid_tool"), web_target, "--port", str(web_port)],
            {"AURORA_MQTT_PASSWORD_FILE": secret["web"], "AURORA_MQTT_CA_FILE": ca,
             "AURORA_WEB_PASSWORD_FILE": str(layout.web_ui_password)},
            read_stdout=True,
        )  # fmt: skip
        web_url = suite.wait_line("web", web, r"listening: http://").split()[-1]
        fetch_url = broker.format(user="fetch") + f"homie/{DEVICE}/$modbus"
        fetch_env = {"AURORA_MQTT_PASSWORD_FILE": secret["fetch"], "AURORA_MQTT_CA_FILE": ca}
        fetch_argv = [str(BIN / "aurora_fetch"), fetch_url, "745-747,1110-1111"]
        fetched = subprocess.run(
            fetch_argv, env={**os.environ, **fetch_env}, capture_output=True, text=True, timeout=60
        )
        # Every command printed is copy-paste-safe from any directory: absolute paths, and the
        # URL quoted ($modbus would otherwise be expanded by the shell to nothing).
        env_words = " ".join(f"{k}={shlex.quote(v)}" for k, v in fetch_env.items())
        print(f"$ {env_words} \\\n    {shlex.join(fetch_argv)}")
        print(fetched.stdout or fetched.stderr)
        if fetched.returncode != 0:
            return 1
        q = shlex.quote
        print(
            f"""The demo is running (logs in {suite.logs}):
  web UI      {web_url}   password in {layout.web_ui_password}
  broker      mqtts://127.0.0.1:{mqtt_port}/ (TLS, CA {ca})
  watch it    mosquitto_sub --cafile {q(ca)} -h 127.0.0.1 -p {mqtt_port} -u fetch \\
                -P "$(cat {q(secret["fetch"])})" -t 'homie/+/+/+' -v
  fetch       {env_words} \\
                {q(str(BIN / "aurora_fetch"))} {q(fetch_url)} valid
  writes      what the heat pump was told to write (web UI settings, /set topics), as 'ADDRESS VALUE':
                tail -f {q(str(writes))}
  Home Assistant: see {suite.logs / "setup.log"}
Ctrl-C stops everything."""
        )
        if args.check:
            return 0
        while not stop.wait(0.5):
            dead = suite.first_dead()
            if dead is not None:
                print(
                    f"demo: {dead}\nStopping the others; `make demo` starts everything again.",
                    file=sys.stderr,
                )
                return 1
        return 0
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.SubprocessError, OSError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        suite.stop()


if __name__ == "__main__":
    raise SystemExit(main())
